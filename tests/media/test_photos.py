"""Photos end to end (issue 15): the real adapters against the fake Telegram / Signal servers, the
real Assistant, and the fake OpenAI server checking image content parts as the API does."""

from __future__ import annotations

import base64
import io
import zipfile

import openai
import pytest

from bots.telegram.process import polling
from core.assistant import Assistant
from core.media import images
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.signal_server import ALICE_NUMBER, ALICE_UUID, FakeSignalServer
from tests.fakes.telegram_server import FakeTelegram
from tests.media.conftest import app_for, bomb, picture, stored_user_texts


def image_parts(ai: FakeOpenAI) -> list[dict[str, object]]:
    """The image parts of the last chat request."""
    return [
        part
        for message in ai.chat_requests[-1].messages
        if isinstance(message["content"], list)
        for part in message["content"]
        if part["type"] == "image_url"
    ]


@pytest.mark.parametrize("model", ["gpt-4o-mini"])
async def test_telegram_photo_with_caption_goes_to_a_vision_model_scaled_down(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Assistant
) -> None:
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_photo(42, picture(3000, 2000), caption="what colour is this?")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 1)
    assert tg.log(42).texts == ["You said: what colour is this?"]
    assert ai.media.images == [("JPEG", 2048, 1365)]
    (user,) = await assistant.store.list_users()
    (kept,) = images.files(assistant.settings.data_dir, f"user:{user.id}")  # in the data folder, per person
    assert kept.read_bytes()[:3] == b"\xff\xd8\xff"
    (text,) = await stored_user_texts(assistant)
    assert text.startswith("what colour is this?") and "ferry-image:" in text


@pytest.mark.parametrize("model", ["gpt-4o-mini"])
async def test_telegram_album_is_one_turn(tg: FakeTelegram, ai: FakeOpenAI, assistant: Assistant) -> None:
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_photo(42, picture(800, 600), caption="which is bigger?", media_group_id="G1")
        tg.push_photo(42, picture(400, 300), media_group_id="G1")
        tg.push_photo(42, picture(200, 100), media_group_id="G1")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 1)
    assert tg.log(42).texts == ["You said: which is bigger?"]
    assert len(ai.chat_requests) == 1
    assert sorted(ai.media.images) == [("JPEG", 200, 100), ("JPEG", 400, 300), ("JPEG", 800, 600)]


@pytest.mark.parametrize("model", ["gpt-4o-mini"])
async def test_telegram_photo_without_caption_waits_for_the_question(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Assistant
) -> None:
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_photo(42, picture(640, 480))
        await tg.wait_until(lambda: len(tg.log(42).messages) == 1)
        assert not ai.chat_requests
        tg.push_text(42, "and what is on it?")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 2)
    assert "What would you like to know" in tg.log(42).texts[0]
    assert tg.log(42).texts[1].startswith("You said:") and "and what is on it?" in tg.log(42).texts[1]
    assert len(image_parts(ai)) == 1
    # A follow-up still has the photo in context.
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_text(42, "and the one on the left?")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 3)
    assert len(image_parts(ai)) == 1


async def test_telegram_photo_to_a_model_that_cannot_see_is_one_sentence(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Assistant
) -> None:
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_photo(42, picture(100, 100), caption="what is this?")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 1)
    (text,) = tg.log(42).texts
    assert "fake-model can't see images" in text and "/model" in text
    assert not ai.chat_requests
    assert await stored_user_texts(assistant) == []


@pytest.mark.parametrize("model", ["gpt-4o-mini"])
async def test_telegram_bomb_and_broken_images_each_get_a_sentence(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Assistant
) -> None:
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_photo(42, bomb(), caption="look")
        tg.push_photo(42, b"\xff\xd8\xff not really a jpeg", caption="look")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 2)
    bombed, broken = tg.log(42).texts
    assert "too large to open safely" in bombed
    assert "couldn't open that image" in broken
    assert not ai.chat_requests
    assert await stored_user_texts(assistant) == []


@pytest.mark.parametrize("model", ["gpt-4o-mini"])
async def test_signal_several_photos_and_text_are_one_turn_and_deleted(
    signal: FakeSignalServer, ai: FakeOpenAI, assistant: Assistant
) -> None:
    fake = signal
    first = fake.add_attachment(picture(300, 200, "JPEG"), "image/jpeg")
    second = fake.add_attachment(picture(200, 300, "PNG"), "image/png")
    await fake.push_message(
        ALICE_UUID,
        ALICE_NUMBER,
        "compare these",
        attachments=[{"id": first, "contentType": "image/jpeg"}, {"id": second, "contentType": "image/png"}],
    )
    await fake.wait_for(lambda: any("You said" in t for t in fake.seen(ALICE_UUID)))
    assert fake.seen(ALICE_UUID)[-1] == "You said: compare these"
    assert sorted(ai.media.images) == [("JPEG", 200, 300), ("JPEG", 300, 200)]
    assert fake.attachments == {}


# --- the fake checks image parts as the API does ------------------------------------------------


async def test_fake_rejects_malformed_image_parts_as_the_api_does(ai: FakeOpenAI) -> None:
    client = openai.AsyncOpenAI(base_url=ai.base_url, api_key="test", max_retries=0)
    good = "data:image/png;base64," + base64.b64encode(picture(10, 10)).decode()
    bad_cases = [
        ([{"role": "user", "content": [{"type": "image", "image": good}]}], "invalid_value"),
        ([{"role": "user", "content": [{"type": "text"}]}], "missing_required_parameter"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AA=="}}]}],
            "invalid_image_format",
        ),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,bm90"}}]}],
            "invalid_image_format",
        ),
        ([{"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": good}}]}], "invalid_value"),
    ]
    try:
        for messages, code in bad_cases:
            with pytest.raises(openai.BadRequestError) as caught:
                await client.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
            assert caught.value.code == code
        answer = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": good}}],
                }
            ],
        )
        assert (answer.choices[0].message.content or "").startswith("You said: hi")
        assert ai.media.images == [("PNG", 10, 10)]
    finally:
        await client.close()


@pytest.mark.parametrize("model", ["gpt-4o-mini"])
async def test_telegram_export_includes_the_photos_and_forget_deletes_them(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Assistant
) -> None:
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_photo(42, picture(300, 300), caption="keep this")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 1)
        tg.push_text(42, "/export")
        await tg.wait_until(lambda: len(tg.log(42).documents) == 3)
        (user,) = await assistant.store.list_users()
        (kept,) = images.files(assistant.settings.data_dir, f"user:{user.id}")
        markdown = next(d for d in tg.log(42).documents if d.filename.endswith(".md")).data.decode()
        zipped = next(d for d in tg.log(42).documents if d.filename == "ferry-photos.zip")
        with zipfile.ZipFile(io.BytesIO(zipped.data)) as archive:
            (name,) = archive.namelist()
            assert archive.read(name) == kept.read_bytes()
        assert name.removeprefix("images/") in markdown  # the export's link names the file in the ZIP
        tg.push_text(42, "/forget")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 2)
        tg.push_callback(42, "forget:yes", tg.log(42).messages[-1])
        await tg.wait_until(lambda: len(tg.log(42).messages) == 3)
    assert not kept.exists()
    assert images.files(assistant.settings.data_dir, f"user:{user.id}") == []
