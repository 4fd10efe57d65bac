"""End-to-end tests of ``ferry telegram``: the real python-telegram-bot against the fake Bot API,
the real Assistant over a real store, and the fake OpenAI server, all on 127.0.0.1.

Exiting ``polling(app)`` waits for every update being handled, so counts checked after it are final.
"""

from __future__ import annotations

import asyncio
import gc
import html
import os
import re
import signal
import socket
import sys
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bots.telegram.process import Pacing, build_application, polling, run, webhook, webhook_params
from bots.telegram.reply import LiveAnswer, TelegramReply
from core import outbox
from core.app import assemble
from core.assistant import Assistant
from core.llm import OpenAIModelClient
from core.metrics import Metrics
from core.reply import Reply as CoreReply
from core.settings import Settings, SettingsError
from core.store.memory import MemoryStore
from core.store.tinydb_store import TinyDBStore
from core.types import AdminAlert, Incoming
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.fakes.telegram_server import EntityError, FakeTelegram, parse_html, utf16_len

FAST = Pacing(draft_interval=0.05, edit_interval=0.1, typing_interval=0.5)
GROUP = -1001234567890


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
async def ai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(chunk_size=4) as server:
        yield server


def settings_for(ai: FakeOpenAI, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "openai_base_url": ai.base_url,
        "openai_api_key": "test",
        "model": "fake-model",
        "telegram_bot_token": "x",
        "data_dir": tmp_path,
        "access": "open",
        "model_retries": 0,
        "rate_per_minute": 1000,
    }
    values.update(overrides)
    return Settings(**values)


class Recording:
    """The real assistant, remembering every Incoming it was given (for adapter assertions)."""

    def __init__(self, inner: Assistant) -> None:
        self.inner = inner
        self.seen: list[Incoming] = []

    @property
    def metrics(self) -> Metrics:
        return self.inner.metrics

    def submit(self, msg: Incoming) -> CoreReply:
        self.seen.append(msg)
        return self.inner.submit(msg)

    async def receive(self, msg: Incoming, key: str, route: Any = None) -> CoreReply | None:
        self.seen.append(msg)
        return await self.inner.receive(msg, key, route)

    def pending(self, platform: str) -> AsyncIterator[CoreReply]:
        return self.inner.pending(platform)

    async def ready(self) -> str | None:
        return await self.inner.ready()

    async def move_chat(self, old: Any, new: Any) -> int:
        return await self.inner.move_chat(old, new)

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    def command_menu(self, lang: str) -> list[tuple[str, str]]:
        return self.inner.command_menu(lang)

    def menu_languages(self) -> tuple[str, ...]:
        return self.inner.menu_languages()

    def text(self, lang: str, key: str, **values: Any) -> str:
        return self.inner.text(lang, key, **values)

    def language(self, language_code: str | None) -> str:
        return self.inner.language(language_code)

    def alerts(self, platform: str) -> AsyncIterator[AdminAlert]:
        return self.inner.alerts(platform, interval=0.05)


async def make_assistant(settings: Settings, store: Any = None) -> Assistant:
    assistant = assemble(
        settings, store or MemoryStore(), OpenAIModelClient(settings.openai_base_url, "test", max_retries=0)
    )
    await assistant.start()
    return assistant


@pytest.fixture
async def assistant(ai: FakeOpenAI, tmp_path: Path) -> AsyncIterator[Recording]:
    inner = await make_assistant(settings_for(ai, tmp_path))
    yield Recording(inner)
    await inner.close()


def app_for(tg: FakeTelegram, assistant: Any) -> Any:
    return build_application(assistant, tg.token, tg.root, pacing=FAST)


# --- the fake itself ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markup", "visible"),
    [
        ("<b>a</b> &amp; <i>b</i>", "a & b"),
        ('<pre><code class="language-py">x &lt; 1</code></pre>', "x < 1"),
        ('<a href="https://x.y">link</a> &#128512;', "link 😀"),
        ("<blockquote expandable>q</blockquote>", "q"),
    ],
)
def test_fake_parses_telegram_html(markup: str, visible: str) -> None:
    assert parse_html(markup) == visible


@pytest.mark.parametrize("markup", ["<b>open", "<div>x</div>", "<b><i>x</b></i>", "a &nbsp; b", "x < y"])
def test_fake_refuses_what_telegram_refuses(markup: str) -> None:
    with pytest.raises(EntityError):
        parse_html(markup)


# --- private chats --------------------------------------------------------------------------------


async def test_private_chat_streams_drafts_then_sends_one_message(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Recording
) -> None:
    answer = "Here is **a** long answer, " + " ".join(f"word{i}" for i in range(60))
    ai.enqueue(Reply(answer, chunk_size=20, chunk_delay=0.03))
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_text(42, "hello", language_code="id")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 1)
    log = tg.log(42)
    assert len(log.messages) == 1
    final = log.messages[0]
    assert final.parse_mode == "HTML"
    assert final.text == answer.replace("**", "")
    assert "<b>a</b>" in final.raw
    assert log.drafts, "the answer should stream as drafts first"
    assert all(final.text.startswith(d.text) for d in log.drafts)
    assert len({d.draft_id for d in log.drafts}) == 1
    assert log.drafts[0].text == "", "a thinking draft at once"
    assert not log.actions, "the draft is the bot's chat action: no sendChatAction besides it"
    assert not tg.calls_of("editMessageText")
    seen = assistant.seen[0]
    assert seen.language_code == "id"
    assert (seen.chat.chat_id, seen.chat.is_group, str(seen.sender)) == ("42", False, "telegram:42")


async def test_an_answer_whole_before_the_first_preview_is_due_is_sent_without_a_text_draft(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Recording
) -> None:
    """A fast model's answer is shown once, as its message: the thinking draft, then sendMessage,
    not a draft of the same text replaced a few milliseconds later (Pacing.settle)."""
    ai.enqueue(Reply("A quick answer in six small pieces.", chunk_size=6))
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_text(42, "quick?")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 1)
    log = tg.log(42)
    assert log.messages[0].text == "A quick answer in six small pieces."
    assert [d.text for d in log.drafts] == [""], "only the thinking draft"


async def test_typing_is_repeated_while_the_model_works(tg: FakeTelegram, ai: FakeOpenAI, assistant: Recording) -> None:
    ai.enqueue(Reply("finally", first_chunk_delay=1.6))  # FAST repeats typing every 0.5 s
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_group_text(GROUP, 7, "think hard", mention=True)
        await tg.wait_until(lambda: bool(tg.log(GROUP).messages) and tg.log(GROUP).messages[0].text == "finally")
    actions = tg.log(GROUP).actions
    assert len(actions) >= 2 and set(actions) == {"typing"}


async def test_private_chat_types_when_the_thinking_draft_is_refused(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Recording
) -> None:
    tg.fail("sendMessageDraft", 400, "Bad Request: draft refused")
    ai.enqueue(Reply("finally", first_chunk_delay=1.6))
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_text(42, "think hard")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 1)
    actions = tg.log(42).actions
    assert len(actions) >= 2 and set(actions) == {"typing"}, "typing stands in for the draft"
    assert tg.log(42).messages[0].text == "finally"
    thinking = [c for c in tg.calls_of("sendMessageDraft") if not c.params.get("text")]
    assert len(thinking) == 1, "a refused thinking draft is not sent again at once"


async def test_command_menu_is_registered_in_english_and_indonesian(tg: FakeTelegram, assistant: Recording) -> None:
    async with polling(app_for(tg, assistant), poll_timeout=1):
        pass
    assert set(tg.commands) == {None, "id"}
    names = [c["command"] for c in tg.commands[None]]
    assert "cancel" in names and "help" in names
    assert tg.commands["id"] != tg.commands[None]


async def test_voice_message_gets_a_friendly_notice(tg: FakeTelegram, ai: FakeOpenAI, assistant: Recording) -> None:
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_media(42, "voice")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 1)
    assert "voice" in tg.log(42).messages[0].text
    assert assistant.seen[0].attachments[0].kind == "voice"
    assert assistant.seen[0].text == ""
    assert not ai.requests


async def test_document_is_downloaded_and_passed_to_the_core(tg: FakeTelegram, assistant: Recording) -> None:
    data = b"[1/2/26, 10:00] Alice: hi\n"
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_document(42, "chat.txt", data, "text/plain")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 1)
    att = assistant.seen[0].attachments[0]
    assert (att.kind, att.filename, att.mime_type, att.size, att.data) == (
        "document",
        "chat.txt",
        "text/plain",
        len(data),
        data,
    )


async def test_a_message_after_a_document_waits_for_the_download(tg: FakeTelegram, assistant: Recording) -> None:
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_document(42, "chat.txt", b"x" * 100_000, "text/plain")
        tg.push_text(42, "/help")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 2)
    assert [m.attachments[0].kind if m.attachments else m.text for m in assistant.seen] == ["document", "/help"]
    assert "/import" in tg.log(42).messages[0].text  # the core's answer to the file comes first


async def test_cancel_overtakes_a_running_answer(tg: FakeTelegram, ai: FakeOpenAI, assistant: Recording) -> None:
    ai.enqueue(Reply("slow " * 200, chunk_size=5, chunk_delay=0.05))
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_text(42, "tell me a long story")
        await tg.wait_until(lambda: any(d.text for d in tg.log(42).drafts))  # past the "thinking" draft
        tg.push_text(42, "/cancel")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 1)
    (final,) = tg.log(42).messages
    assert final.text.endswith("(cut off)")
    assert len(final.text) < len("slow " * 200)


# --- groups and topics ----------------------------------------------------------------------------


async def test_group_mention_gets_a_placeholder_that_is_edited(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Recording
) -> None:
    answer = " ".join(f"part{i}" for i in range(40))
    ai.enqueue(Reply(answer, chunk_size=10, chunk_delay=0.03))
    async with polling(app_for(tg, assistant), poll_timeout=1):
        asked = tg.push_group_text(GROUP, 7, "hello there", mention=True)
        await tg.wait_until(lambda: bool(tg.log(GROUP).messages) and tg.log(GROUP).messages[0].text == answer)
    log = tg.log(GROUP)
    assert len(log.messages) == 1, "one placeholder, edited into the answer"
    placeholder = log.messages[0]
    assert placeholder.reply_to_message_id == asked["message_id"]
    assert len(placeholder.edits) >= 2
    assert not log.drafts
    seen = assistant.seen[0]
    assert seen.text == "hello there"
    assert (seen.chat.chat_id, seen.chat.topic, seen.chat.is_group) == (str(GROUP), None, True)
    assert ai.requests[0].messages[-1]["content"].endswith("hello there")


async def test_an_answered_message_leaves_no_reference_cycle(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Recording, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each answer's view (typing, drafts or the edited placeholder, the preview) is freed by
    reference counting once shown: left to the cycle collector, a view per answer and all it held
    outlived the answer (bots/live.py)."""
    views: list[weakref.ref[Any]] = []
    for cls in (TelegramReply, LiveAnswer):
        init = cls.__init__

        def tracked(self: Any, *args: Any, __init: Any = init, **kwargs: Any) -> None:
            __init(self, *args, **kwargs)
            views.append(weakref.ref(self))

        monkeypatch.setattr(cls, "__init__", tracked)
    ai.enqueue(Reply(" ".join(f"word{i}" for i in range(40)), chunk_size=10, chunk_delay=0.03))
    ai.enqueue(Reply(" ".join(f"part{i}" for i in range(40)), chunk_size=10, chunk_delay=0.03))
    gc.collect()
    gc.disable()
    try:
        async with polling(app_for(tg, assistant), poll_timeout=1):
            tg.push_text(42, "hello")
            await tg.wait_until(lambda: len(tg.log(42).messages) == 1)
            tg.push_group_text(GROUP, 7, "hello there", mention=True)
            await tg.wait_until(lambda: bool(tg.log(GROUP).messages) and bool(tg.log(GROUP).messages[0].edits))
            await tg.wait_until(lambda: tg.log(GROUP).messages[0].text.endswith("part39"))
            assert len(views) >= 4  # a reply and its live answer for each
            await tg.wait_until(lambda: all(view() is None for view in views))
    finally:
        gc.enable()


async def test_unaddressed_group_message_gets_no_answer(tg: FakeTelegram, ai: FakeOpenAI, assistant: Recording) -> None:
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_group_text(GROUP, 7, "just chatting among ourselves")
        tg.push_group_text(GROUP, 7, "/help@other_bot")
        tg.push_group_text(GROUP, 7, "/help@test_bot")
        await tg.wait_until(lambda: len(tg.log(GROUP).messages) == 1)
    assert len(tg.log(GROUP).messages) == 1
    assert "/new" in tg.log(GROUP).messages[0].text  # the help text
    assert [m.addressed for m in assistant.seen] == [False, False, True]
    assert assistant.seen[2].text == "/help"
    assert not ai.requests


async def test_service_messages_get_no_answer_and_never_reach_the_core(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Recording
) -> None:
    """Someone joins the group, a message is pinned in a private chat: Bot API service messages,
    without text (core.telegram.org/bots/api#message); the text after them is answered."""
    alice = tg.user(42)
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_update({"message": tg._message(GROUP, alice, new_chat_members=[tg.user(43, "Bob")])})
        pinned = {"message_id": 1, "date": 1700000000, "chat": {"id": 42, "type": "private"}, "text": "old"}
        tg.push_update({"message": tg._message(42, alice, pinned_message=pinned)})
        tg.push_text(42, "hello")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 1)
    assert [m.text for m in assistant.seen] == ["hello"]
    assert not tg.log(GROUP).messages
    assert len(ai.requests) == 1


async def test_reply_in_a_forum_topic_stays_in_the_topic(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Recording
) -> None:
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_group_text(GROUP, 7, "first question", mention=True, message_thread_id=77)
        await tg.wait_until(lambda: tg.log(GROUP).texts == ["You said: Alice: first question"])
        answer = tg.log(GROUP).messages[0]
        tg.push_group_text(GROUP, 8, "and a follow-up", reply_to_bot=answer, message_thread_id=77)
        await tg.wait_until(lambda: len(tg.log(GROUP).texts) == 2 and tg.log(GROUP).texts[1].startswith("You"))
    assert [m.message_thread_id for m in tg.log(GROUP).messages] == [77, 77]
    assert all(a == "typing" for a in tg.log(GROUP).actions)
    assert {(m.chat.topic, m.addressed) for m in assistant.seen} == {("77", True)}
    assert assistant.seen[1].quoted_text == "You said: Alice: first question"
    context = [m["content"] for m in ai.requests[1].messages]
    assert any("first question" in c for c in context), "the topic's earlier turns are in the context"


# --- flood control, refusals, long answers --------------------------------------------------------


async def test_flood_control_mid_stream_delivers_the_answer_exactly_once(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Recording
) -> None:
    answer = "Flood " + " ".join(f"w{i}" for i in range(50))
    ai.enqueue(Reply(answer, chunk_size=8, chunk_delay=0.02))
    ai.enqueue(Reply(answer, chunk_size=8, chunk_delay=0.02))
    tg.flood("sendMessageDraft", times=2, retry_after=1)
    tg.flood("sendMessage", times=1, retry_after=1)
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_text(42, "private please")
        await tg.wait_until(lambda: tg.log(42).texts == [answer], within=15)
        tg.flood("editMessageText", times=1, retry_after=1)
        tg.push_group_text(GROUP, 7, "group please", mention=True)
        await tg.wait_until(lambda: tg.log(GROUP).texts == [answer], within=15)
    assert tg.log(42).texts == [answer]
    assert tg.log(GROUP).texts == [answer]
    refused = {c.method for c in tg.calls if c.status == 429}
    assert refused == {"sendMessageDraft", "sendMessage", "editMessageText"}


async def test_refused_entities_fall_back_to_plain_text(tg: FakeTelegram, ai: FakeOpenAI, assistant: Recording) -> None:
    ai.enqueue(Reply("Some **bold** and `code`."))
    tg.refuse_entities("sendMessage")
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_text(42, "format something")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 1)
    (message,) = tg.log(42).messages
    assert message.parse_mode is None
    assert message.text == "Some bold and code."
    assert [c.status for c in tg.calls_of("sendMessage")] == [400, 200]


async def test_many_long_links_arrive_as_smaller_formatted_parts(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Recording
) -> None:
    # 90 links of ~150 characters: within 100 entities and 4,096 characters, but their URLs
    # add up past what Telegram accepts (ENTITIES_TOO_LONG), which used to lose the answer.
    links = [f"[source {i}](https://example.org/{'x' * 120}/{i})" for i in range(90)]
    ai.enqueue(Reply("Sources: " + ", ".join(links)))
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_text(42, "cite everything")
        await tg.wait_until(lambda: "source 89" in "".join(tg.log(42).texts), within=15)
    shown = "".join(tg.log(42).texts)
    assert all(f"source {i}" in shown for i in range(90))
    assert "went wrong" not in shown.lower()
    assert any(c.status == 400 for c in tg.calls_of("sendMessage"))  # the fake refused it whole
    assert all(m.parse_mode == "HTML" for m in tg.log(42).messages)  # links kept, in smaller parts


async def test_ten_thousand_characters_with_code_blocks_split_into_intact_parts(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Recording
) -> None:
    blocks = []
    code_lines = []
    for i in range(12):
        blocks.append(f"Paragraph {i}: " + "lorem ipsum dolor sit amet " * 20)
        lines = [f"    value_{i}_{j} = compute({j}) + {i} * 2  # step {j}" for j in range(8)]
        code_lines += [line.strip() for line in lines]
        blocks.append("```python\n" + "\n".join(line.strip() for line in lines) + "\n```")
    answer = "\n\n".join(blocks)
    assert len(answer) > 10_000
    ai.enqueue(Reply(answer, chunk_size=400))
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_text(42, "write a lot")
        await tg.wait_until(lambda: sum(len(t) for t in tg.log(42).texts) > 9_000)
    messages = tg.log(42).messages
    assert len(messages) >= 3
    assert all(utf16_len(m.text) <= 4096 for m in messages)
    in_code = []
    for m in messages:
        assert m.raw.count("<pre>") == m.raw.count("</pre>")
        for block in re.findall(r"<pre>(.*?)</pre>", m.raw, flags=re.S):
            in_code += html.unescape(re.sub(r"<[^>]+>", "", block)).splitlines()
    assert set(code_lines) <= set(in_code), "every code line arrives inside a code block"


async def test_an_adapter_error_tells_the_user_one_sentence_and_the_bot_goes_on(
    tg: FakeTelegram, assistant: Recording
) -> None:
    tg.fail("sendMessage", 400, "Bad Request: chat not found")
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_text(42, "/help")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 1)
        tg.push_text(42, "/help")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 2)
    first, second = tg.log(42).texts
    assert first == assistant.text("en", "error.internal")
    assert "/new" in second


async def test_a_deleted_placeholder_does_not_lose_the_answer(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Recording
) -> None:
    ai.enqueue(Reply("the answer", chunk_size=3, chunk_delay=0.02))
    tg.fail("editMessageText", 400, "Bad Request: message to edit not found", times=100)
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_group_text(GROUP, 7, "hi", mention=True)
        await tg.wait_until(lambda: "the answer" in tg.log(GROUP).texts)
    assert tg.log(GROUP).texts == ["…", "the answer"]


def test_run_without_a_token_says_what_to_set() -> None:
    with pytest.raises(SettingsError, match="TELEGRAM_BOT_TOKEN"):
        run(Settings(telegram_bot_token=None))


async def test_ferry_telegram_process_answers_and_stops_cleanly(
    tg: FakeTelegram, ai: FakeOpenAI, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": tg.token,
        "TELEGRAM_API_URL": tg.root,
        "OPENAI_BASE_URL": ai.base_url,
        "OPENAI_API_KEY": "test",
        "FERRY_MODEL": "fake-model",
        "FERRY_DATA_DIR": str(tmp_path),
        "FERRY_ACCESS": "open",
    }
    env.pop("FERRY_CONFIG", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; from bots.cli import main; sys.exit(main(['telegram']))", env=env
    )
    try:
        await tg.wait_until(lambda: bool(tg.calls_of("getUpdates")), within=30)
        tg.push_text(42, "hello from the real process")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 1, within=30)
    finally:
        proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), 30)
    assert tg.log(42).texts == ["You said: hello from the real process"]
    assert code == 0


# --- access approval ------------------------------------------------------------------------------


async def test_admin_approves_a_new_user_with_a_button(tg: FakeTelegram, ai: FakeOpenAI, tmp_path: Path) -> None:
    settings = settings_for(ai, tmp_path, access="approval", admins=("telegram:1",))
    assistant = await make_assistant(settings)
    try:
        async with polling(app_for(tg, assistant), poll_timeout=1):
            tg.push_text(42, "hi, may I?")
            await tg.wait_until(lambda: bool(tg.log(42).messages) and bool(tg.log(1).messages))
            alert = tg.log(1).messages[0]
            labels = [label for row in alert.buttons for label, _ in row]
            assert labels == ["Approve", "Deny"]
            approve = next(data for row in alert.buttons for label, data in row if label == "Approve")
            tg.push_callback(1, approve, alert)
            await tg.wait_until(lambda: len(tg.log(42).messages) == 2)
            tg.push_text(42, "now can I chat?")
            await tg.wait_until(lambda: len(tg.log(42).messages) == 3)
    finally:
        await assistant.close()
    assert tg.callback_answers, "the button press is answered"
    texts = tg.log(42).texts
    assert "asked the admin" in texts[0]
    assert "let you in" in texts[1]
    assert texts[2] == "You said: now can I chat?"


async def test_alerts_left_by_the_signal_process_are_delivered_on_telegram(
    tg: FakeTelegram, assistant: Recording
) -> None:
    alert = AdminAlert(to=("telegram:5", "signal:abc"), text="You were **linked**.")
    await outbox.post(assistant.inner.store, "telegram", alert, assistant.inner.clock())
    async with polling(app_for(tg, assistant), poll_timeout=1):
        await tg.wait_until(lambda: len(tg.log(5).messages) == 1)
    assert tg.log(5).texts == ["You were linked."]


# --- restart --------------------------------------------------------------------------------------


async def test_restart_keeps_the_conversation(tg: FakeTelegram, ai: FakeOpenAI, tmp_path: Path) -> None:
    settings = settings_for(ai, tmp_path)
    for turn, text in enumerate(["my name is Bob", "what is my name?"], start=1):
        assistant = await make_assistant(settings, TinyDBStore(tmp_path))
        try:
            async with polling(app_for(tg, assistant), poll_timeout=1):
                tg.push_text(42, text)
                await tg.wait_until(lambda n=turn: len(tg.log(42).messages) == n)  # type: ignore[misc]
        finally:
            await assistant.close()
    context = [m["content"] for m in ai.requests[1].messages]
    assert "my name is Bob" in context
    assert "You said: my name is Bob" in context


# --- webhook --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_webhook_mode_checks_the_secret_token(tg: FakeTelegram, assistant: Recording) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/tg-hook"
    async with webhook(app_for(tg, assistant), url, port, "s3cret", listen="127.0.0.1"):
        assert tg.webhook == {"url": url, "secret_token": "s3cret"}
        forged = {"message": tg._message(42, tg.user(42), text="/help")}
        assert await tg.deliver_webhook(forged, secret="wrong") == 403
        assert await tg.deliver_webhook(forged, secret=None) == 403
        tg.push_text(42, "/help")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 1)
    assert tg.webhook_deliveries == [200]
    assert "/new" in tg.log(42).messages[0].text


def test_webhook_without_a_configured_secret_gets_a_random_one() -> None:
    first = webhook_params("https://bot.example/hook/tg", 8443, None)
    second = webhook_params("https://bot.example/hook/tg", 8443, None)
    assert first["url_path"] == "hook/tg"
    assert len(first["secret_token"]) >= 32
    assert first["secret_token"] != second["secret_token"]
    assert webhook_params("https://bot.example/x", 1, "mine")["secret_token"] == "mine"


async def test_long_group_answer_overflows_into_new_messages_exactly_once(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Recording
) -> None:
    answer = "\n\n".join(f"Section {i}. " + "the quick brown fox jumps " * 30 for i in range(14))
    ai.enqueue(Reply(answer, chunk_size=300, chunk_delay=0.01))
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_group_text(GROUP, 7, "write a lot", mention=True)
        await tg.wait_until(lambda: "Section 13." in "".join(tg.log(GROUP).texts))
    texts = tg.log(GROUP).texts
    assert len(texts) >= 3
    assert all(utf16_len(t) <= 4096 for t in texts)
    joined = "\n\n".join(texts)
    for i in range(14):
        assert joined.count(f"Section {i}.") == 1, "every section is shown exactly once"
    assert tg.log(GROUP).messages[0].reply_to_message_id is not None


async def test_connected_follows_the_last_exchange_with_the_bot_api(tg: FakeTelegram, assistant: Recording) -> None:
    from bots.telegram.process import connected

    app = app_for(tg, assistant)
    async with polling(app, poll_timeout=1):
        await tg.wait_until(lambda: connected(app, polling=True))
        await tg.stop()  # the Bot API server goes away: the next long poll fails
        for _ in range(100):
            if not connected(app, polling=True):
                break
            await asyncio.sleep(0.05)
        assert not connected(app, polling=True)
    assert not connected(app, polling=True)


async def test_a_send_that_timed_out_but_arrived_is_neither_repeated_nor_reported_as_an_error(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Recording
) -> None:
    # Issue 12.9: the first part's sendMessage is carried out, but its answer comes too late.
    answer = "\n\n".join(f"Part {i}. " + "the quick brown fox jumps " * 30 for i in range(6))
    ai.enqueue(Reply(answer, chunk_size=2000, chunk_delay=0.01))
    tg.stall("sendMessage", seconds=2.0)
    app = build_application(assistant, tg.token, tg.root, pacing=FAST, read_timeout=0.5)
    async with polling(app, poll_timeout=1):
        tg.push_text(42, "write a lot")
        await tg.wait_until(lambda: "Part 5." in "".join(tg.log(42).texts), within=20)
        await asyncio.sleep(2.5)  # anything sent late (a repeat, an error notice) would show by now
    texts = tg.log(42).texts
    assert len(texts) >= 2, "the answer came in several parts"
    joined = "\n\n".join(texts)
    for i in range(6):
        assert joined.count(f"Part {i}.") == 1, "every part is shown exactly once"
    assert not any("went wrong" in t for t in texts), "no error notice after an answer that arrived"
