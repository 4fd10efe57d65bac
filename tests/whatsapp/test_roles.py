"""Role detection hints, the question fallback, and turning a chat into turns."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from core.whatsapp.archive import ImportRejected
from core.whatsapp.parser import parse_export
from core.whatsapp.roles import Turn, detect_roles, is_chatgpt_sender, to_turns

FIXTURES = Path(__file__).parent / "fixtures"


def chat_of(*lines: str) -> str:
    return "".join(f"12/01/2024, 14:{i:02d} - {line}\n" for i, line in enumerate(lines))


@pytest.mark.parametrize(
    "name",
    [
        "ChatGPT",
        "Chat GPT",
        "chatgpt",
        "1-800-ChatGPT",
        "1-800-CHATGPT",
        "ChatGPT ✅",
        "OpenAI",
        "+1 (800) 242-8478",
        "+18002428478",
        "\u202a+1\u00a0800\u00a0242\u00a08478\u202c",
        "1-800-242-8478",
        "(800) 242-8478",
    ],
)
def test_chatgpt_sender_in_any_formatting(name: str) -> None:
    assert is_chatgpt_sender(name)


@pytest.mark.parametrize("name", ["Dana", "+1 (800) 242-8479", "+44 800 242 8478", "Chat", "GPT fan"])
def test_other_senders_are_not_chatgpt(name: str) -> None:
    assert not is_chatgpt_sender(name)


@pytest.mark.parametrize(
    ("text", "filename", "assistant", "user", "evidence", "confidence"),
    [
        (chat_of("Dana: hi", "ChatGPT: hello"), None, "ChatGPT", "Dana", ("name",), "high"),
        (chat_of("Dana: hi", "+1 (800) 242-8478: hello"), None, "+1 (800) 242-8478", "Dana", ("number",), "high"),
        (
            chat_of("Dana: hi", "Helper: hello"),
            "WhatsApp Chat with Helper.txt",
            "Helper",
            "Dana",
            ("filename",),
            "medium",
        ),
        (
            chat_of("Dana: hi", "Helper: hello", "Dana: You deleted this message"),
            None,
            "Helper",
            "Dana",
            ("you_deleted",),
            "medium",
        ),
        (
            chat_of("Dana: hi", "ChatGPT: hello"),
            "WhatsApp Chat with ChatGPT.txt",
            "ChatGPT",
            "Dana",
            ("name", "filename"),
            "high",
        ),
    ],
)
def test_hints(
    text: str, filename: str | None, assistant: str, user: str, evidence: tuple[str, ...], confidence: str
) -> None:
    guess = detect_roles(parse_export(text), filename)
    assert (guess.assistant, guess.user, guess.evidence, guess.confidence) == (
        assistant,
        user,
        evidence,
        confidence,
    )
    assert not guess.needs_question and not guess.conflict


def test_ios_encryption_notice_marks_the_other_party() -> None:
    chat = parse_export((FIXTURES / "ios_id_region.txt").read_text(encoding="utf-8"))
    guess = detect_roles(chat, "_chat.txt")
    assert (guess.assistant, guess.user) == ("ChatGPT", "Siti")
    assert "ios_notice" in guess.evidence


def test_no_hint_asks() -> None:
    guess = detect_roles(parse_export(chat_of("Dana: hi", "Helper: hello")), None)
    assert (guess.assistant, guess.user, guess.confidence, guess.needs_question) == (None, None, "none", True)


def test_disagreeing_hints_ask_but_keep_the_strong_guess() -> None:
    # The name says ChatGPT, yet the file name says the chat was with Dana.
    guess = detect_roles(parse_export(chat_of("Dana: hi", "ChatGPT: hello")), "WhatsApp Chat with Dana.txt")
    assert guess.conflict and guess.needs_question
    assert guess.assistant == "ChatGPT"


def test_group_chat_asks_and_cannot_become_turns() -> None:
    chat = parse_export(chat_of("Dana: hi", "ChatGPT: hello", "Bob: hey"))
    guess = detect_roles(chat, None)
    assert guess.is_group and guess.needs_question
    assert guess.assistant == "ChatGPT" and guess.user is None
    with pytest.raises(ImportRejected) as info:
        to_turns(chat, guess)
    assert info.value.reason == "group_chat"


def test_single_sender_asks() -> None:
    guess = detect_roles(parse_export(chat_of("Dana: note to self")), None)
    assert guess.needs_question


def test_answer_to_the_question_resolves_the_roles() -> None:
    chat = parse_export(chat_of("Dana: hi", "Helper: hello"))
    guess = detect_roles(chat, None).with_assistant("Helper")
    assert (guess.assistant, guess.user, guess.needs_question) == ("Helper", "Dana", False)
    with pytest.raises(ValueError):
        guess.with_assistant("Nobody")


def test_undecided_roles_cannot_become_turns() -> None:
    chat = parse_export(chat_of("Dana: hi", "Helper: hello"))
    with pytest.raises(ValueError):
        to_turns(chat, detect_roles(chat, None))


def test_turns_drop_system_and_deleted_and_note_media() -> None:
    chat = parse_export((FIXTURES / "android_en_gb_24h.txt").read_text(encoding="utf-8"))
    transcript = to_turns(chat, detect_roles(chat, "WhatsApp Chat with ChatGPT.txt"))
    assert transcript.skipped_deleted == 1
    assert [(t.role, t.text.split("\n")[0]) for t in transcript.turns] == [
        ("user", "Hi! Can you plan a trip?"),
        ("assistant", "Sure. Here is a plan:"),
        ("user", "[media omitted]"),
        ("user", "Thanks, that helps"),
        ("user", "[image omitted]"),
        ("assistant", "Nice photo!"),
    ]
    assert transcript.turns[2] == Turn("user", "[media omitted]\nwhat about this place?", datetime(2024, 1, 12, 14, 5))


def test_turn_notes_for_ios_media() -> None:
    chat = parse_export((FIXTURES / "ios_en_12h.txt").read_text(encoding="utf-8"))
    transcript = to_turns(chat, detect_roles(chat, None))
    assert [t.text for t in transcript.turns if t.text.startswith("[")] == [
        "[image omitted]",
        "[image omitted]",
        "[document omitted: Resume.pdf]",
    ]
    assert transcript.skipped_deleted == 1


def test_fingerprint_is_stable_and_content_sensitive() -> None:
    text = (FIXTURES / "android_en_gb_24h.txt").read_text(encoding="utf-8")
    a = parse_export(text)
    b = parse_export("\ufeff" + text.replace("\n", "\r\n"))  # same export, other container details
    roles = detect_roles(a, None)
    fa = to_turns(a, roles).fingerprint
    assert fa == to_turns(b, detect_roles(b, None)).fingerprint
    assert fa == to_turns(a, roles.with_assistant("Dana")).fingerprint  # independent of roles
    c = parse_export(text.replace("Nice photo!", "Nice photo."))
    assert to_turns(c, detect_roles(c, None)).fingerprint != fa
    assert len(fa) == 64


def test_export_with_only_system_lines_is_empty() -> None:
    chat = parse_export("12/01/2024, 14:03 - Messages and calls are end-to-end encrypted.\n")
    guess = detect_roles(chat, "WhatsApp Chat with ChatGPT.txt")
    assert guess.needs_question and guess.senders == ()
    with pytest.raises(ImportRejected) as info:
        to_turns(chat, guess)
    assert info.value.reason == "empty"


def test_public_api_is_importable_from_the_package() -> None:
    import core.whatsapp as wa

    export = wa.read_export(
        "WhatsApp Chat with ChatGPT.txt", b"12/01/2024, 14:03 - Dana: hi\n12/01/2024, 14:04 - ChatGPT: hello\n"
    )
    chat = wa.parse_export(export.text)
    transcript = wa.to_turns(chat, wa.detect_roles(chat, "WhatsApp Chat with ChatGPT.txt"))
    assert [(t.role, t.text) for t in transcript.turns] == [("user", "hi"), ("assistant", "hello")]
