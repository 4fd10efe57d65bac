"""Decide which sender of a parsed export was the assistant, and turn the chat into turns.

Hints, strongest first: the 1-800-ChatGPT number (+1 800 242 8478) or a ChatGPT-like sender
name; the chat name in the file name; the sender iOS attributes the encryption notice to (the
other party); the sender of "You deleted this message" (the exporter, so the user) and of
"This message was deleted" (the other party). When there are not exactly two senders, or the
hints disagree, or none fires, ``needs_question`` is set and the caller asks the user.

Deleted messages are dropped from the turns: their text is gone, and a "[message deleted]" note
would only add noise to the model's context. They still count as role hints. Media become short
notes such as "[image omitted]" followed by the caption, if any. System lines are dropped.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from core.whatsapp.archive import ImportRejected, chat_name_from_filename
from core.whatsapp.parser import INVISIBLE, MediaKind, Message, ParsedChat

Role = Literal["user", "assistant"]
Confidence = Literal["high", "medium", "none"]

CHATGPT_NUMBER_DIGITS = "18002428478"
_ASSISTANT_NAME_RE = re.compile(r"chatgpt|openai")
_NON_ALNUM_RE = re.compile(r"[\W_]+")
_MEDIA_NOTES: dict[MediaKind, str] = {
    "image": "[image omitted]",
    "video": "[video omitted]",
    "audio": "[audio omitted]",
    "voice": "[voice message omitted]",
    "sticker": "[sticker omitted]",
    "gif": "[GIF omitted]",
    "contact": "[contact card omitted]",
    "document": "[document omitted]",
    "view_once": "[view-once media omitted]",
    "media": "[media omitted]",
}


@dataclass(frozen=True)
class RoleGuess:
    """Who was the assistant and who the user, with the evidence behind it.

    ``evidence`` names the hints that fired ("number", "name", "filename", "ios_notice",
    "you_deleted", "other_deleted"); ``conflict`` is True when they pointed at different senders.
    """

    assistant: str | None
    user: str | None
    senders: tuple[str, ...]
    confidence: Confidence
    evidence: tuple[str, ...] = ()
    conflict: bool = False
    needs_question: bool = False

    @property
    def is_group(self) -> bool:
        """More than two people wrote in this chat: not a 1:1 ChatGPT chat."""
        return len(self.senders) > 2

    def with_assistant(self, assistant: str) -> RoleGuess:
        """The guess after the user said which sender was the assistant."""
        if assistant not in self.senders:
            raise ValueError(f"{assistant!r} is not a sender of this chat")
        others = [s for s in self.senders if s != assistant]
        user = others[0] if len(others) == 1 else None
        return replace(self, assistant=assistant, user=user, confidence="high", conflict=False, needs_question=False)


@dataclass(frozen=True)
class Turn:
    """One imported message as the conversation core stores it."""

    role: Role
    text: str
    timestamp: datetime  # naive local wall-clock time, as written in the export


@dataclass(frozen=True)
class Transcript:
    """The turns of an import and a fingerprint that is equal for the same export."""

    turns: tuple[Turn, ...]
    fingerprint: str
    skipped_deleted: int = 0


def _compact(name: str) -> str:
    return _NON_ALNUM_RE.sub("", unicodedata.normalize("NFKC", name).casefold())


def _is_chatgpt_number(name: str) -> bool:
    digits = "".join(ch for ch in name if ch.isdigit())
    return digits in (CHATGPT_NUMBER_DIGITS, CHATGPT_NUMBER_DIGITS[1:], "00" + CHATGPT_NUMBER_DIGITS)


def _is_chatgpt_name(name: str) -> bool:
    return _ASSISTANT_NAME_RE.search(_compact(name)) is not None


def is_chatgpt_sender(name: str) -> bool:
    """True for the 1-800-ChatGPT number in any formatting or a ChatGPT-like name."""
    return _is_chatgpt_number(name) or _is_chatgpt_name(name)


def _matches_sender(chat_name: str, sender: str) -> bool:
    a, b = _compact(chat_name), _compact(sender)
    if a and a == b:
        return True
    da = "".join(ch for ch in chat_name if ch.isdigit())
    db = "".join(ch for ch in sender if ch.isdigit())
    return len(da) >= 7 and da == db


_Vote = tuple[str, str]  # (hint, the sender it says was the assistant)
_NOTICE_KINDS = ("encryption", "security_code", "business")


def _sender_votes(senders: tuple[str, ...]) -> list[_Vote]:
    """The ChatGPT number or a ChatGPT-like name among the senders."""
    votes: list[_Vote] = []
    for s in senders:
        if _is_chatgpt_number(s):
            votes.append(("number", s))
        elif _is_chatgpt_name(s):
            votes.append(("name", s))
    return votes


def _filename_votes(senders: tuple[str, ...], filename: str | None) -> list[_Vote]:
    """The sender the file is named after ("WhatsApp Chat with ChatGPT.txt")."""
    name = chat_name_from_filename(filename)
    return [("filename", s) for s in senders if _matches_sender(name, s)] if name else []


def _message_votes(chat: ParsedChat) -> list[_Vote]:
    """iOS's notice from the other party; the exporter's and the other party's deleted messages."""
    senders = chat.senders
    votes: list[_Vote] = []
    notice = next((ln.sender for ln in chat.system if ln.sender in senders and ln.kind in _NOTICE_KINDS), None)
    if notice is not None:
        votes.append(("ios_notice", notice))
    mine = next((m.sender for m in chat.messages if m.deleted_by_exporter), None)
    others = [s for s in senders if s != mine]
    if mine is not None and len(others) == 1:  # the exporter is the user: the other one answered
        votes.append(("you_deleted", others[0]))
    theirs = next((m.sender for m in chat.messages if m.deleted and not m.deleted_by_exporter), None)
    if theirs is not None:
        votes.append(("other_deleted", theirs))
    return votes


def _confidence(assistant: str | None, strong: list[str]) -> Confidence:
    if assistant is None:
        return "none"
    return "high" if strong else "medium"


def _decide(senders: tuple[str, ...], votes: list[_Vote]) -> RoleGuess:
    """One assistant when the strong hints, or else all hints, name the same sender."""
    picked = {v for _, v in votes}
    conflict = len(picked) > 1
    strong = [v for h, v in votes if h in ("number", "name")]
    assistant: str | None
    if len(set(strong)) == 1:
        assistant = strong[0]
    elif len(picked) == 1:
        assistant = next(iter(picked))
    else:
        assistant = None
    others = [s for s in senders if s != assistant]
    user = others[0] if assistant is not None and len(others) == 1 else None
    needs_question = len(senders) != 2 or conflict or assistant is None
    evidence = tuple(dict.fromkeys(h for h, _ in votes))
    return RoleGuess(assistant, user, senders, _confidence(assistant, strong), evidence, conflict, needs_question)


def detect_roles(chat: ParsedChat, filename: str | None = None) -> RoleGuess:
    """Guess the assistant among the senders of ``chat`` (``filename`` is the upload's name)."""
    senders = chat.senders
    votes = _sender_votes(senders) + _filename_votes(senders, filename) + _message_votes(chat)
    return _decide(senders, votes)


def _turn_text(m: Message) -> str:
    if m.media is None:
        return m.text
    if m.media == "document" and m.attachment:
        note = f"[document omitted: {_display_attachment(m.attachment)}]"
    else:
        note = _MEDIA_NOTES.get(m.media, "[media omitted]")
    return f"{note}\n{m.text}" if m.text else note


def _display_attachment(name: str) -> str:
    # iOS prefixes attachments with a sequence number: "00000047-Resume.pdf".
    return re.sub(r"^\d{8}-", "", name)


_INVISIBLE_RE = re.compile("[" + INVISIBLE + "]")


def _normal(text: str) -> str:
    if _INVISIBLE_RE.search(text):
        text = _INVISIBLE_RE.sub("", text)
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


def fingerprint(messages: Iterable[Message]) -> str:
    """sha256 over the normalised messages (time, sender, text, flags) in file order.

    Independent of roles and of the container (txt or zip), so the same export imported twice
    gets the same value.
    """
    h = hashlib.sha256()
    for m in messages:
        record = "\x1f".join(
            (
                m.timestamp.isoformat(),
                _normal(m.sender),
                _normal(m.text),
                m.media or "",
                "d" if m.deleted else "",
                "e" if m.edited else "",
            )
        )
        h.update(record.encode("utf-8"))
        h.update(b"\x1e")
    return h.hexdigest()


def to_turns(chat: ParsedChat, roles: RoleGuess) -> Transcript:
    """Map the chat's messages to user/assistant turns in file order.

    Raises :class:`ImportRejected` ("empty" without messages, "group_chat" for more than two
    senders) and ``ValueError`` if the roles are still undecided (ask the user first, then
    :meth:`RoleGuess.with_assistant`).
    """
    if not chat.messages:
        raise ImportRejected("empty", "no messages, only system lines")
    if len(chat.senders) > 2:
        raise ImportRejected("group_chat", f"{len(chat.senders)} senders")
    if roles.assistant is None or roles.assistant not in chat.senders:
        raise ValueError("the assistant sender is not decided")
    turns: list[Turn] = []
    skipped = 0
    for m in chat.messages:
        if m.deleted:
            skipped += 1
            continue
        text = _turn_text(m)
        if not text.strip():
            continue
        role: Role = "assistant" if m.sender == roles.assistant else "user"
        turns.append(Turn(role, text, m.timestamp))
    return Transcript(tuple(turns), fingerprint(chat.messages), skipped)
