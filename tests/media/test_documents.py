"""Documents end to end (issue 15): PDF, Word, Markdown/CSV/source files through the real adapters,
their text joining the conversation; every kind of bad file gets its own sentence."""

from __future__ import annotations

import pytest

from bots.telegram.process import polling
from core.assistant import Assistant
from core.media.documents import MAX_PAGES
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.signal_server import ALICE_NUMBER, ALICE_UUID, FakeSignalServer
from tests.fakes.telegram_server import FakeTelegram
from tests.media.conftest import app_for, pdf, spooled_files, stored_user_texts, word, word_bomb

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def sent_to_model(ai: FakeOpenAI) -> str:
    return str(ai.chat_requests[-1].messages[-1]["content"])


async def test_telegram_pdf_with_a_question_joins_the_conversation(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Assistant
) -> None:
    data = pdf(["The invoice total is 420 euros", "", "Due on 3 March"])
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_document(42, "invoice.pdf", data, "application/pdf", caption="when is it due?")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 1)
    text = sent_to_model(ai)
    assert text.startswith("when is it due?")
    assert "[document: invoice.pdf]" in text and "420 euros" in text and "Due on 3 March" in text
    assert tg.log(42).texts[0].startswith("You said: when is it due?")
    (stored,) = await stored_user_texts(assistant)
    assert "420 euros" in stored
    # Downloaded into the spool in the data folder, not memory; removed once answered.
    await tg.wait_until(lambda: not spooled_files(assistant, "telegram"))


async def test_telegram_docx_without_a_question_waits_for_it(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Assistant
) -> None:
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_document(42, "plan.docx", word(["Step one: buy paint", "Step two: paint"]), DOCX)
        await tg.wait_until(lambda: len(tg.log(42).messages) == 1)
        assert not ai.chat_requests
        tg.push_text(42, "what is step two?")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 2)
    assert "Got plan.docx" in tg.log(42).texts[0]
    assert "Step two: paint" in sent_to_model(ai) and "what is step two?" in sent_to_model(ai)


@pytest.mark.parametrize(
    ("name", "mime", "content"),
    [("notes.md", "text/markdown", "# Notes\n- buy milk"), ("data.csv", "text/csv", "a,b\n1,2"),
     ("main.py", "text/x-python", "print('hi')")],
)  # fmt: skip
async def test_telegram_text_files_are_read(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Assistant, name: str, mime: str, content: str
) -> None:
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_document(42, name, content.encode(), mime, caption="explain")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 1)
    assert content in sent_to_model(ai)


async def test_telegram_long_document_is_cut_with_a_note(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Assistant
) -> None:
    long = "\n".join(f"line {i} " + "x" * 80 for i in range(1000))  # ~88,000 characters
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_document(42, "big.md", long.encode(), "text/markdown", caption="summarise")
        await tg.wait_until(lambda: len(tg.log(42).messages) >= 2 and len(ai.chat_requests) == 1)
    note, answer = tg.log(42).texts[:2]  # the echoed answer is long enough to be split, too
    assert "big.md is long" in note and "characters" in note
    assert answer.startswith("You said: summarise")
    text = sent_to_model(ai)
    assert "[cut: only the first" in text and len(text) <= assistant.settings.max_message_chars


async def test_telegram_bad_documents_each_get_a_sentence(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Assistant
) -> None:
    cases = [
        ("secret.pdf", pdf(["hidden"], password="pw"), "application/pdf", "protected with a password"),
        ("scan.pdf", pdf(["", ""]), "application/pdf", "only scanned pages"),
        ("huge.pdf", pdf([""] * 5000), "application/pdf", f"5,000 pages; I read PDFs of up to {MAX_PAGES:,}"),
        ("bomb.docx", word_bomb(), DOCX, "unpacks to far more"),
        ("broken.pdf", b"%PDF-1.7 garbage", "application/pdf", "couldn't open broken.pdf"),
        ("tool.exe", b"MZ\x90\x00", "application/octet-stream", "I can't read tool.exe"),
    ]
    async with polling(app_for(tg, assistant), poll_timeout=1):
        for name, data, mime, _ in cases:
            tg.push_document(42, name, data, mime, caption="read this")
        await tg.wait_until(lambda: len(tg.log(42).messages) == len(cases))
    for text, (name, _, _, expected) in zip(tg.log(42).texts, cases, strict=True):
        assert expected in text, (name, text)
    assert not ai.chat_requests
    assert await stored_user_texts(assistant) == []


async def test_telegram_document_over_the_download_limit_names_it_before_downloading(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Assistant
) -> None:
    async with polling(app_for(tg, assistant), poll_timeout=1):
        message = tg.push_document(42, "scan.pdf", b"%PDF", "application/pdf")
        message["document"]["file_size"] = 60 * 1024 * 1024  # what the update announces
        await tg.wait_until(lambda: len(tg.log(42).messages) == 1)
    (text,) = tg.log(42).texts
    assert "60 MB" in text and "50 MB" in text
    assert not tg.calls_of("getFile")


async def test_signal_pdf_is_read_and_deleted(signal: FakeSignalServer, ai: FakeOpenAI, assistant: Assistant) -> None:
    fake = signal
    doc = fake.add_attachment(pdf(["Meeting at noon"]), "application/pdf")
    await fake.push_message(
        ALICE_UUID, ALICE_NUMBER, "what time?",
        attachments=[{"id": doc, "contentType": "application/pdf", "filename": "memo.pdf"}],
    )  # fmt: skip
    await fake.wait_for(lambda: any("You said" in t for t in fake.seen(ALICE_UUID)))
    assert "Meeting at noon" in sent_to_model(ai)
    assert fake.attachments == {}
    await fake.wait_for(lambda: not spooled_files(assistant, "signal"))
