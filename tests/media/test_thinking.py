"""Telegram's "thinking" draft for a voice note or a document goes out when the update is taken,
before the file is fetched (bots/telegram/thinking.py), and only where the core shows one anyway."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bots.telegram.process import polling
from core.assistant import Assistant
from tests.fakes.openai_media import speech
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.fakes.telegram_server import FakeTelegram
from tests.media.conftest import app_for, pdf

MB = 1024 * 1024


class HeldFiles(FakeTelegram):
    """A Telegram whose file downloads wait until ``release`` is set (a slow file server)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        await self.release.wait()
        return await super()._handle_file(request)


@pytest.fixture
async def held() -> AsyncIterator[HeldFiles]:
    server = HeldFiles()
    async with server:
        yield server


@pytest.mark.parametrize("kind", ["voice", "pdf"])
async def test_the_thinking_draft_comes_before_the_file_is_fetched(
    held: HeldFiles, ai: FakeOpenAI, assistant: Assistant, kind: str
) -> None:
    async with polling(app_for(held, assistant), poll_timeout=1):
        if kind == "voice":
            held.push_voice(42, speech("hello there"))
        else:
            held.push_document(42, "a.pdf", pdf(["The total is 420 euros"]), caption="total?")
        await held.wait_until(lambda: bool(held.log(42).drafts))
        assert held.log(42).drafts[0].text == "", "Telegram's own 'thinking' draft"
        assert not held.log(42).messages and not ai.chat_requests
        held.release.set()
        answers = 2 if kind == "voice" else 1  # the quoted transcript, then the answer
        await held.wait_until(lambda: len(held.log(42).messages) == answers)
    assert held.log(42).texts[-1].startswith("You said:")
    assert held.drafts.lapses.get(42, 0) == 0


async def test_no_early_draft_where_the_core_shows_none(tg: FakeTelegram, assistant: Assistant) -> None:
    """Over a limit, a type Ferry does not read, an import, a group: one sentence, no draft first."""
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_voice(42, speech("long"), file_size=30 * MB)
        await tg.wait_until(lambda: len(tg.log(42).messages) == 1)
        tg.push_document(42, "tool.exe", b"MZ\x90\x00", "application/octet-stream")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 2)
    assert not tg.log(42).drafts
    assert not tg.calls_of("sendMessageDraft")


async def test_an_answer_being_shown_is_not_covered_by_the_next_files_draft(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Assistant
) -> None:
    ai.enqueue(Reply("one two three four five six seven eight nine ten", chunk_size=4, chunk_delay=0.05))
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_text(42, "count to ten")
        await tg.wait_until(lambda: any(d.text for d in tg.log(42).drafts))  # the answer is streaming
        tg.push_voice(42, speech("and now?"))
        await tg.wait_until(lambda: len(tg.log(42).messages) == 3)
    shown = [
        (c.method, str(c.params.get("text") or ""))
        for c in tg.calls
        if c.method in ("sendMessageDraft", "sendMessage") and str(c.params.get("chat_id")) == "42"
    ]
    words = next(i for i, (method, text) in enumerate(shown) if text)
    final = next(i for i, (method, _) in enumerate(shown) if method == "sendMessage")
    assert shown[final][1] == "one two three four five six seven eight nine ten"
    assert all(text for _, text in shown[words:final]), "a thinking draft covered the answer being written"
