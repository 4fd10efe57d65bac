"""Voice notes and audio end to end (issue 15): the real python-telegram-bot and signalbot against
the fake Telegram / Signal servers, the real Assistant, and the openai client against the fake
OpenAI server's ``/v1/audio/transcriptions`` (tests/fakes/openai_media.py), all on 127.0.0.1."""

from __future__ import annotations

import pytest
from telegram import Bot

from bots.telegram.media import messenger_limit
from bots.telegram.process import polling
from core.assistant import Assistant
from core.media import limits
from tests.fakes.openai_media import speech
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.signal_server import ALICE_NUMBER, ALICE_UUID, FakeSignalServer
from tests.fakes.telegram_server import FakeTelegram
from tests.media.conftest import app_for, stored_user_texts

MB = 1024 * 1024


# --- Telegram -------------------------------------------------------------------------------------


async def test_telegram_voice_note_is_transcribed_quoted_and_answered(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Assistant
) -> None:
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_voice(42, speech("what is the capital of France"))
        await tg.wait_until(lambda: len(tg.log(42).messages) == 2)
    quote, answer = tg.log(42).texts
    assert "what is the capital of France" in quote
    assert answer == "You said: what is the capital of France"
    (sent,) = ai.media.transcriptions
    assert (sent.model, sent.filename, sent.language) == ("whisper-1", "audio.ogg", "en")
    assert ai.chat_requests[-1].messages[-1]["content"] == "what is the capital of France"
    assert await stored_user_texts(assistant) == ["what is the capital of France"]


async def test_telegram_transcripts_off_hides_the_quote(tg: FakeTelegram, ai: FakeOpenAI, assistant: Assistant) -> None:
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_text(42, "/transcripts off")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 1)
        tg.push_voice(42, speech("hello there"))
        await tg.wait_until(lambda: len(tg.log(42).messages) == 2)
    assert "/transcripts on" in tg.log(42).texts[0]
    assert tg.log(42).texts[1] == "You said: hello there"


@pytest.mark.parametrize(
    ("kind", "data", "name"),
    [("audio", speech("a song", "mp3"), "audio.mp3"), ("video_note", speech("round hello", "m4a"), "audio.mp4")],
)
async def test_telegram_audio_and_round_video_notes_are_transcribed(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Assistant, kind: str, data: bytes, name: str
) -> None:
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_voice(42, data, kind=kind)
        await tg.wait_until(lambda: len(tg.log(42).messages) == 2)
    words = data.split(b"ftyp")[-1].split(b"ID3")[-1].decode()
    assert tg.log(42).texts[1] == f"You said: {words}"
    assert ai.media.transcriptions[0].filename == name


async def test_telegram_voice_over_the_transcription_limit_is_refused_before_downloading(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Assistant
) -> None:
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_voice(42, speech("long"), file_size=30 * MB)
        await tg.wait_until(lambda: len(tg.log(42).messages) == 1)
    (text,) = tg.log(42).texts
    assert "30 MB" in text and "25 MB" in text
    assert not tg.calls_of("getFile")
    assert not ai.media.transcriptions and not ai.chat_requests


async def test_telegram_corrupt_audio_gets_its_own_sentence(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Assistant
) -> None:
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_voice(42, b"\x00\x01 not audio at all")
        tg.push_voice(42, speech(""))
        await tg.wait_until(lambda: len(tg.log(42).messages) == 2)
    broken, silent = tg.log(42).texts
    assert "couldn't play that recording" in broken
    assert "couldn't hear any words in that voice note" in silent
    assert not ai.chat_requests
    assert await stored_user_texts(assistant) == []  # nothing half-stored


def test_telegram_download_limit_is_the_cloud_bot_apis_unless_self_hosted() -> None:
    cloud = Bot("1:x")
    own = Bot("1:x", base_url="http://127.0.0.1:8081/bot")
    assert messenger_limit(cloud) == limits.TELEGRAM_CLOUD
    assert messenger_limit(own) == limits.TELEGRAM_LOCAL
    # On the cloud, 21 MB is over Telegram's 20 MB before transcription's 25 MB.
    assert limits.over("voice", 21 * MB, limits.TELEGRAM_CLOUD) == limits.TELEGRAM_CLOUD
    assert limits.over("voice", 21 * MB, limits.TELEGRAM_LOCAL) is None
    assert limits.over("voice", 26 * MB, limits.TELEGRAM_LOCAL) == limits.TRANSCRIPTION
    assert limits.over("document", 30 * MB, limits.TELEGRAM_CLOUD) == limits.TELEGRAM_CLOUD


# --- Signal ---------------------------------------------------------------------------------------


async def test_signal_voice_note_is_transcribed_answered_and_deleted(
    signal: FakeSignalServer, ai: FakeOpenAI, assistant: Assistant
) -> None:
    fake = signal
    note = fake.add_attachment(speech("remind me about the dentist", "aac"), "audio/aac")
    await fake.push_message(
        ALICE_UUID, ALICE_NUMBER, None, attachments=[{"id": note, "contentType": "audio/aac", "isVoiceNote": True}]
    )
    await fake.wait_for(lambda: any("You said" in t for t in fake.seen(ALICE_UUID)))
    seen = fake.seen(ALICE_UUID)
    assert "remind me about the dentist" in seen[0]
    assert seen[-1] == "You said: remind me about the dentist"
    assert ai.media.transcriptions[0].filename == "audio.m4a"
    assert fake.attachments == {}
    assert await stored_user_texts(assistant) == ["remind me about the dentist"]


async def test_signal_long_text_with_its_long_text_attachment_is_one_message(
    signal: FakeSignalServer, ai: FakeOpenAI
) -> None:
    fake = signal
    text = "word " * 600  # over 2,000 bytes: signal-cli adds the text/x-signal-plain copy
    copy = fake.add_attachment(text.encode(), "text/x-signal-plain")
    await fake.push_message(
        ALICE_UUID, ALICE_NUMBER, text, attachments=[{"id": copy, "contentType": "text/x-signal-plain"}]
    )
    await fake.wait_for(lambda: any("You said" in t for t in fake.seen(ALICE_UUID)))
    assert len(ai.chat_requests) == 1
    assert fake.attachments == {}
    assert not any("can only read" in t for t in fake.seen(ALICE_UUID))


async def test_signal_audio_over_the_transcription_limit_is_refused_before_downloading(
    signal: FakeSignalServer, ai: FakeOpenAI
) -> None:
    fake = signal
    big = fake.add_attachment(speech("long"), "audio/mpeg")
    await fake.push_message(
        ALICE_UUID, ALICE_NUMBER, None, attachments=[{"id": big, "contentType": "audio/mpeg", "size": 40 * MB}]
    )
    await fake.wait_for(lambda: len(fake.seen(ALICE_UUID)) == 1)
    assert "40 MB" in fake.seen(ALICE_UUID)[0] and "25 MB" in fake.seen(ALICE_UUID)[0]
    assert fake.attachment_downloads == [] and fake.attachments == {}
    assert not ai.media.transcriptions


async def test_telegram_voice_minutes_are_counted_at_the_catalogue_price(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Assistant
) -> None:
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_voice(42, speech("a thirty second note"), duration=30)
        await tg.wait_until(lambda: len(tg.log(42).messages) == 2)
    (user,) = await assistant.store.list_users()
    totals = await assistant.store.usage_totals(user.id, 0)
    assert totals.by_model["whisper-1"][2] == pytest.approx(0.003)  # half a minute at 0.006 USD


async def test_telegram_voice_on_answers_voice_notes_with_a_voice_note(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Assistant
) -> None:
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_voice(42, speech("first without voice"))
        await tg.wait_until(lambda: len(tg.log(42).messages) == 2)
        tg.push_text(42, "/voice on")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 3)
        tg.push_voice(42, speech("how are you"))
        await tg.wait_until(lambda: len(tg.log(42).voices) == 1)
        tg.push_text(42, "typed question")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 6)
    (voice,) = tg.log(42).voices  # only the answer to the voice note after /voice on is spoken
    assert voice.data == b"OggS" + b"You said: how are you"
    (spoken,) = ai.media.speeches
    assert (spoken["model"], spoken["response_format"], spoken["input"]) == ("tts-1", "opus", "You said: how are you")
    assert "You said: how are you" in tg.log(42).texts  # the text answer is still there


async def test_signal_voice_on_sends_the_spoken_answer_as_an_audio_attachment(
    signal: FakeSignalServer, ai: FakeOpenAI, assistant: Assistant
) -> None:
    fake = signal
    await fake.push_message(ALICE_UUID, ALICE_NUMBER, "/voice on")
    await fake.wait_for(lambda: len(fake.seen(ALICE_UUID)) == 1)
    note = fake.add_attachment(speech("say hi", "aac"), "audio/aac")
    await fake.push_message(
        ALICE_UUID, ALICE_NUMBER, None, attachments=[{"id": note, "contentType": "audio/aac", "isVoiceNote": True}]
    )
    await fake.wait_for(lambda: any(body.get("base64_attachments") for body in fake.sent))
    body = next(b for b in fake.sent if b.get("base64_attachments"))
    assert body["base64_attachments"][0].startswith("data:audio/ogg;filename=answer.ogg;base64,")
