"""Bringing WhatsApp history along, end to end through both real messenger libraries:
send the export, confirm the preview, continue the chat, and the model receives the imported turns."""

from __future__ import annotations

from pathlib import Path

from bots.signal.process import SignalAdapter
from bots.telegram.process import build_application, polling
from core.store.tinydb_store import TinyDBStore
from tests.bots.test_signal_bot import FAST as SIGNAL_FAST
from tests.bots.test_telegram_bot import FAST as TELEGRAM_FAST
from tests.conftest import MakeAssistant
from tests.core.test_importer import EXPORT
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.signal_server import ALICE_NUMBER, ALICE_UUID, FakeSignalServer
from tests.fakes.telegram_server import FakeTelegram

IMPORTED = [
    ("user", "What's a good name for a cat?"),
    ("assistant", "How about Mochi? It's short and sweet."),
    ("user", "I named her Mochi!\nThank you"),
    ("assistant", "Wonderful! Give Mochi a scratch from me."),
]


async def test_import_on_telegram_then_continue(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI, tmp_path: Path
) -> None:
    assistant = await make_assistant(store=TinyDBStore(tmp_path))
    async with FakeTelegram() as tg:
        app = build_application(assistant, tg.token, tg.root, pacing=TELEGRAM_FAST)
        async with polling(app, poll_timeout=1):
            tg.push_document(42, "WhatsApp Chat with ChatGPT.txt", EXPORT.encode(), "text/plain")
            await tg.wait_until(lambda: len(tg.log(42).messages) == 1)
            preview = tg.log(42).messages[0]
            assert preview.text.startswith("4 messages, Jan 13\u2009–\u200914, 2026.")
            labels = [row[0] for row in preview.buttons]
            assert [label for label, _ in labels] == ["Import", "Swap roles", "Cancel"]

            tg.push_callback(42, labels[0][1], preview)
            await tg.wait_until(lambda: len(tg.log(42).messages) == 2)
            assert tg.log(42).messages[1].text.startswith("Imported 4 messages into «WhatsApp: ChatGPT»")

            tg.push_text(42, "What was my cat called?")
            await tg.wait_until(lambda: len(tg.log(42).messages) == 3)
    context = [(m["role"], m["content"]) for m in openai_server.chat_requests[-1].messages[1:]]
    assert context == [*IMPORTED, ("user", "What was my cat called?")]


async def test_import_on_signal_with_numbered_choices_then_continue(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI, tmp_path: Path
) -> None:
    assistant = await make_assistant(store=TinyDBStore(tmp_path))
    async with FakeSignalServer() as fake:
        adapter = SignalAdapter(
            assistant, service=fake.service, phone_number=fake.number, edit_interval=0.02,
            startup_backoff=SIGNAL_FAST, reconnect_backoff=SIGNAL_FAST, typing_refresh=3600,
        )
        await adapter.start()
        try:
            await fake.wait_connected()
            doc = fake.add_attachment(EXPORT.encode(), "text/plain")
            await fake.push_message(
                ALICE_UUID, ALICE_NUMBER, None,
                attachments=[{"id": doc, "contentType": "text/plain",
                              "filename": "WhatsApp Chat with ChatGPT.txt", "size": len(EXPORT.encode())}],
            )
            await fake.wait_for(lambda: any("Import?" in b["message"] for b in fake.sent))
            preview = next(b["message"] for b in fake.sent if "Import?" in b["message"])
            assert "ChatGPT = «ChatGPT», you = «Dana»" in preview
            assert "1. Import" in preview and "2. Swap roles" in preview and "3. Cancel" in preview

            await fake.push_message(ALICE_UUID, ALICE_NUMBER, "1")
            await fake.wait_for(lambda: any("Imported 4 messages" in b["message"] for b in fake.sent))

            await fake.push_message(ALICE_UUID, ALICE_NUMBER, "What was my cat called?")
            await fake.wait_for(lambda: openai_server.request_count == 1)
            await fake.wait_for(lambda: any("You said: What was my cat" in b["message"] for b in fake.sent))
        finally:
            await adapter.stop()
    context = [(m["role"], m["content"]) for m in openai_server.chat_requests[-1].messages[1:]]
    assert context == [*IMPORTED, ("user", "What was my cat called?")]
