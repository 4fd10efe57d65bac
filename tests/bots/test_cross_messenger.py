"""One person on both messengers, end to end: the real Telegram and Signal adapters against their
fake servers, two assistants (one per bot process) on one TinyDB data folder, and the fake model."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bots.services import Backoff
from bots.signal.process import SignalAdapter
from bots.telegram.process import Pacing, build_application, polling
from core.app import assemble
from core.assistant import Assistant
from core.llm import OpenAIModelClient
from core.settings import Settings
from core.store.tinydb_store import TinyDBStore
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.signal_server import ALICE_NUMBER, ALICE_UUID, FakeSignalServer
from tests.fakes.telegram_server import FakeTelegram

DANA = 42  # Dana's Telegram user id; on Signal she is Alice's account of the fake
CODE = re.compile(r"/link ([A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4})")
FAST = Backoff(0.01, 0.05)


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
async def signal() -> AsyncIterator[FakeSignalServer]:
    async with FakeSignalServer() as server:
        yield server


async def process(ai: FakeOpenAI, data: Path) -> Assistant:
    """The assistant one bot process runs: its own store object on the shared folder."""
    settings = Settings(
        openai_base_url=ai.base_url, openai_api_key="test", model="gpt-4o-mini", data_dir=data,
        access="open", model_retries=0, rate_per_minute=1000,
    )
    assistant = assemble(settings, TinyDBStore(data), OpenAIModelClient(ai.base_url, "test", max_retries=0))
    await assistant.start()
    return assistant


def shown_on_signal(fake: FakeSignalServer) -> list[str]:
    """Each Signal message as finally shown to Dana (after its last edit), in order."""
    shown: dict[int, str] = {}
    for body, ts in zip(fake.sent, fake.sent_timestamps, strict=True):
        if body["recipients"] == [ALICE_UUID]:
            shown[body.get("edit_timestamp", ts)] = body["message"]
    return list(shown.values())


async def test_link_on_telegram_and_continue_the_conversation_on_signal(
    tg: FakeTelegram, signal: FakeSignalServer, openai_server: FakeOpenAI, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    on_telegram, on_signal = await process(openai_server, data), await process(openai_server, data)
    adapter = SignalAdapter(
        on_signal, service=signal.service, phone_number=signal.number, edit_interval=0.02,
        startup_backoff=FAST, reconnect_backoff=FAST, typing_refresh=3600,
    )
    app: Any = build_application(on_telegram, tg.token, tg.root, pacing=Pacing(0.05, 0.1, 0.5))
    try:
        await adapter.start()
        await signal.wait_connected()
        async with polling(app, poll_timeout=1):
            tg.push_text(DANA, "my name is Dana and I live in Bandung", first_name="Dana")
            await tg.wait_until(lambda: len(tg.log(DANA).messages) == 1)
            tg.push_text(DANA, "/link", first_name="Dana")
            await tg.wait_until(lambda: len(tg.log(DANA).messages) == 2)
            match = CODE.search(tg.log(DANA).texts[1])
            assert match, tg.log(DANA).texts[1]

            async def on_signal_say(text: str, replies: int) -> str:
                await signal.push_message(ALICE_UUID, ALICE_NUMBER, text, source_name="Dana")
                await signal.wait_for(lambda: len(shown_on_signal(signal)) >= replies)
                return shown_on_signal(signal)[replies - 1]

            assert "Linked!" in await on_signal_say(f"/link {match.group(1)}", 1)
            assert "my name is Dana" in await on_signal_say("/chats", 2)
            openai_server.clear()
            answer = await on_signal_say("where do I live?", 3)
            await signal.wait_for(lambda: shown_on_signal(signal)[2] == "You said: where do I live?")
            # The whole text may show as a preview a moment before the answer is stored: Dana
            # writes on Telegram once the turn is over (four messages in the conversation).
            user = await on_telegram.store.find_user(f"telegram:{DANA}")
            assert user is not None

            async def stored() -> int:
                return (await on_telegram.store.list_conversations(f"user:{user.id}", 1))[0].message_count

            for _ in range(200):
                if await stored() == 4:
                    break
                await asyncio.sleep(0.01)
            assert await stored() == 4
            context = [m["content"] for m in openai_server.chat_requests[-1].messages[1:]]
            assert context == [
                "my name is Dana and I live in Bandung",
                "You said: my name is Dana and I live in Bandung",
                "where do I live?",
            ], answer

            # Back on Telegram, the turn said on Signal is part of the same conversation.
            tg.push_text(DANA, "thanks!", first_name="Dana")
            await tg.wait_until(lambda: len(tg.log(DANA).messages) == 3)
            assert "where do I live?" in [m["content"] for m in openai_server.chat_requests[-1].messages]

            # /forget on Signal, confirmed with a numbered choice, forgets the Telegram side too.
            ask = await on_signal_say("/forget", 4)
            assert "1" in ask and "Yes, delete everything" in ask
            assert "everything stored about you is deleted" in await on_signal_say("1", 5)
            tg.push_text(DANA, "/chats", first_name="Dana")
            await tg.wait_until(lambda: len(tg.log(DANA).messages) == 4)
            assert "no conversations yet" in tg.log(DANA).texts[3]
    finally:
        await adapter.stop()
        await on_telegram.close()
        await on_signal.close()


def said_on_signal(fake: FakeSignalServer) -> list[str]:
    """Every message text the bot sent on Signal, to anyone."""
    return [body["message"] for body in fake.sent]


async def test_an_access_request_on_telegram_reaches_the_admin_on_signal(
    tg: FakeTelegram, signal: FakeSignalServer, tmp_path: Path
) -> None:
    async with FakeOpenAI() as ai:
        settings = Settings(
            openai_base_url=ai.base_url, openai_api_key="test", model="gpt-4o-mini", data_dir=tmp_path,
            access="approval", admins=(f"signal:{ALICE_NUMBER}",), model_retries=0, rate_per_minute=1000,
        )

        async def bot_process() -> Assistant:
            client = OpenAIModelClient(ai.base_url, "test", max_retries=0)
            assistant = assemble(settings, TinyDBStore(tmp_path), client)
            await assistant.start()
            return assistant

        on_telegram, on_signal = await bot_process(), await bot_process()
        adapter = SignalAdapter(
            on_signal, service=signal.service, phone_number=signal.number, edit_interval=0.02,
            startup_backoff=FAST, reconnect_backoff=FAST, typing_refresh=3600,
        )
        try:
            await adapter.start()
            await signal.wait_connected()
            async with polling(build_application(on_telegram, tg.token, tg.root, pacing=Pacing(0.05, 0.1, 0.5)), 1):
                tg.push_text(DANA, "hello?")
                await tg.wait_until(lambda: len(tg.log(DANA).messages) == 1)
                assert "asked the admin" in tg.log(DANA).messages[0].text
                # The admin is only on Signal (known by number): the Signal process delivers the request with choices.
                await signal.wait_for(lambda: any("New access request" in m for m in said_on_signal(signal)))
                request = next(m for m in said_on_signal(signal) if "New access request" in m)
                assert "1. Approve" in request and "2. Deny" in request
                await signal.push_message(ALICE_UUID, ALICE_NUMBER, "1")
                await signal.wait_for(lambda: any("Access approved" in m for m in said_on_signal(signal)))
                # ...and Dana hears back on Telegram, through the Telegram process.
                await tg.wait_until(lambda: len(tg.log(DANA).messages) == 2, within=15)
                assert "let you in" in tg.log(DANA).messages[1].text
        finally:
            await adapter.stop()
            await on_telegram.close()
            await on_signal.close()
