"""Bringing a WhatsApp ChatGPT chat into Ferry through the core: file, preview, confirm, continue."""

from __future__ import annotations

import io
import zipfile

from core.assistant import Assistant
from core.types import Attachment, Notice, Progress, Reaction, ReplyEvent
from tests.conftest import MakeAssistant
from tests.core.test_assistant import final, say, texts
from tests.fakes.openai_server import FakeOpenAI

EXPORT = (
    "13/01/2026, 09:15 - Messages and calls are end-to-end encrypted. No one outside of this chat, "
    "not even WhatsApp, can read or listen to them. Tap to learn more.\n"
    "13/01/2026, 09:15 - Dana: What's a good name for a cat?\n"
    "13/01/2026, 09:16 - ChatGPT: How about Mochi? It's short and sweet.\n"
    "14/01/2026, 20:01 - Dana: I named her Mochi!\n"
    "Thank you\n"
    "14/01/2026, 20:02 - ChatGPT: Wonderful! Give Mochi a scratch from me.\n"
)


def document(data: bytes | str, filename: str = "WhatsApp Chat with ChatGPT.txt") -> Attachment:
    raw = data.encode() if isinstance(data, str) else data
    return Attachment(kind="document", filename=filename, mime_type="text/plain", size=len(raw), data=raw)


async def send_file(assistant: Assistant, attachment: Attachment, **kw: object) -> list[ReplyEvent]:
    return await say(assistant, "", attachments=(attachment,), **kw)  # type: ignore[arg-type]


def only_notice(events: list[ReplyEvent]) -> Notice:
    notices = [e for e in events if isinstance(e, Notice)]
    assert len(notices) == 1, events
    return notices[0]


def button(notice: Notice, label: str) -> str:
    for row in notice.buttons:
        for b in row:
            if b.label == label:
                return b.data
    raise AssertionError(f"no button {label!r} in {notice.buttons}")


async def test_import_preview_confirm_and_continue(make_assistant: MakeAssistant, openai_server: FakeOpenAI) -> None:
    assistant = await make_assistant()
    preview = only_notice(await send_file(assistant, document(EXPORT)))
    assert preview.text == "4 messages, Jan 13\u2009–\u200914, 2026. ChatGPT = «ChatGPT», you = «Dana». Import?"
    done = await say(assistant, "", callback=button(preview, "Import"))
    assert texts(done) == [
        "Imported 4 messages into «WhatsApp: ChatGPT». It's now your current conversation: "
        "just write to continue where you left off."
    ]
    user = await assistant.store.find_user("telegram:1")
    assert user is not None
    conv = (await assistant.store.list_conversations(f"user:{user.id}", 1))[0]
    stored = await assistant.store.get_messages(conv.id)
    assert [(m.role, m.content) for m in stored] == [
        ("user", "What's a good name for a cat?"),
        ("assistant", "How about Mochi? It's short and sweet."),
        ("user", "I named her Mochi!\nThank you"),
        ("assistant", "Wonderful! Give Mochi a scratch from me."),
    ]
    assert stored[0].created_at == 1768295700.0  # 13 Jan 2026 09:15, the export's own time

    await say(assistant, "What was my cat called again?")
    context = [(m["role"], m["content"]) for m in openai_server.chat_requests[-1].messages[1:]]
    assert context[0] == ("user", "What's a good name for a cat?")
    assert context[-1] == ("user", "What was my cat called again?")
    assert len(context) == 5

    # The same file again is recognised, not duplicated.
    again = only_notice(await send_file(assistant, document(EXPORT)))
    dup = await say(assistant, "", callback=button(again, "Import"))
    assert "already imported" in texts(dup)[0]
    convs = await assistant.store.list_conversations(f"user:{user.id}", 10)
    assert len(convs) == 1


async def test_roles_can_be_swapped_or_asked(make_assistant: MakeAssistant) -> None:
    assistant = await make_assistant()
    preview = only_notice(await send_file(assistant, document(EXPORT)))
    swapped = only_notice(await say(assistant, "", callback=button(preview, "Swap roles")))
    assert "ChatGPT = «Dana», you = «ChatGPT»" in swapped.text

    unclear = EXPORT.replace("ChatGPT:", "Helper:")
    which = only_notice(await send_file(assistant, document(unclear, "WhatsApp Chat with Helper Bot.txt")))
    if which.text.startswith("I found"):
        assert [row[0].label for row in which.buttons] == ["Dana", "Helper", "Cancel"]
        chosen = only_notice(await say(assistant, "", callback=button(which, "Helper")))
        assert "ChatGPT = «Helper», you = «Dana»" in chosen.text
    cancelled = await say(assistant, "", callback="wa:no")
    assert texts(cancelled) == ["Import cancelled. Nothing was saved."]
    user = await assistant.store.find_user("telegram:1")
    assert user is not None
    assert await assistant.store.list_conversations(f"user:{user.id}", 10) == []
    expired = await say(assistant, "", callback="wa:yes")
    assert texts(expired) == ["That import has expired. Please send the file again."]


async def test_two_unknown_senders_are_asked_about(make_assistant: MakeAssistant) -> None:
    assistant = await make_assistant()
    unclear = EXPORT.replace("ChatGPT:", "Kai:").replace("Messages and calls", "Pesan dan panggilan")
    which = only_notice(await send_file(assistant, document(unclear, "export.txt")))
    assert which.text == "I found 4 messages. Which of these was the assistant (ChatGPT)?"
    chosen = only_notice(await say(assistant, "", callback=button(which, "Kai")))
    assert chosen.text.endswith("ChatGPT = «Kai», you = «Dana». Import?")


async def test_bad_files_are_declined_and_change_nothing(make_assistant: MakeAssistant) -> None:
    assistant = await make_assistant(FERRY_LANG="en")
    group = EXPORT + "14/01/2026, 20:03 - Bob: me too\n"
    traversal = io.BytesIO()
    with zipfile.ZipFile(traversal, "w") as zf:
        zf.writestr("../../etc/_chat.txt", EXPORT)
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("_chat.txt", EXPORT + "x" * 20_000_000)
    cases = [
        (document("just some notes\nnothing else\n", "notes.txt"), "doesn't look like a WhatsApp chat export"),
        (document("", "WhatsApp Chat with ChatGPT.txt"), "This file is empty"),
        (document(group), "group chat export"),
        (document(traversal.getvalue(), "WhatsApp Chat with ChatGPT.zip"), "unsafe file names"),
        (document(bomb.getvalue(), "WhatsApp Chat with ChatGPT.zip"), "unpacks to far more"),
        (document(b"\xff\xfe\x00garbage\x81\x82" * 10, "WhatsApp Chat with ChatGPT.txt"), ""),
    ]
    for attachment, expected in cases:
        notice = only_notice(await send_file(assistant, attachment))
        assert notice.is_error and expected in notice.text, (attachment.filename, notice.text)
    user = await assistant.store.find_user("telegram:1")
    assert user is not None
    assert await assistant.store.list_conversations(f"user:{user.id}", 10) == []
    other = only_notice(await send_file(assistant, Attachment(kind="document", filename="photo.pdf", data=b"%PDF")))
    assert other.text.startswith("I can only read WhatsApp chat exports")


async def test_a_long_import_reports_progress(make_assistant: MakeAssistant) -> None:
    assistant = await make_assistant()
    lines = []
    for i in range(1500):
        minute = i % 60
        hour = 8 + (i // 60) % 12
        lines.append(f"15/01/2026, {hour:02d}:{minute:02d} - Dana: question {i}")
        lines.append(f"15/01/2026, {hour:02d}:{minute:02d} - ChatGPT: answer {i}")
    preview = only_notice(await send_file(assistant, document("\n".join(lines) + "\n")))
    assert preview.text.startswith("3,000 messages, Jan 15, 2026.")
    events = await say(assistant, "", callback=button(preview, "Import"))
    progress = [e for e in events if isinstance(e, Progress)]
    assert [p.done for p in progress] == [500, 1000, 1500, 2000, 2500, 3000]
    assert progress[-1].text == "Importing… 3,000 of 3,000 messages"
    assert texts(events)[-1].startswith("Imported 3,000 messages")


async def test_import_help_names_the_whatsapp_menus(make_assistant: MakeAssistant) -> None:
    assistant = await make_assistant()
    english = texts(await say(assistant, "/import"))[0]
    assert "Export chat → Without media" in english and "Export Chat → Without Media" in english
    indonesian = texts(await say(assistant, "/import", sender="telegram:2", language_code="id"))[0]
    assert "Ekspor chat → Tanpa media" in indonesian


async def test_an_imported_chat_shows_up_in_chats(make_assistant: MakeAssistant) -> None:
    assistant = await make_assistant()
    await say(assistant, "hello first")
    preview = only_notice(await send_file(assistant, document(EXPORT)))
    await say(assistant, "", callback=button(preview, "Import"))
    listing = only_notice(await say(assistant, "/chats"))
    assert listing.buttons[0][0].label.startswith("WhatsApp: ChatGPT")
    assert final(await say(assistant, "continue")).text == "You said: continue"


async def test_reading_a_file_is_acknowledged_with_a_reaction(make_assistant: MakeAssistant) -> None:
    assistant = await make_assistant()
    events = await send_file(assistant, document(EXPORT))
    assert isinstance(events[0], Reaction) and events[0].emoji == "👀"
