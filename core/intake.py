"""The durable intake (issue 11): every message recorded before it is acknowledged, answered once.

An adapter hands each update to :meth:`core.contract.Core.receive` with the messenger's own key
for it. The core takes the chat's place in line at once, starts answering, and returns once the
message is recorded in the store (:class:`~core.store.base.IntakeStore`), which is when the
adapter may acknowledge it upstream. The record's write runs beside the model request, never
before it: only the person's message in the conversation waits for it, so a key seen before never
gets a second answer in the history.

A :class:`Receipt` follows one recorded message: its key and chat, where the adapter delivers
(the message itself and the adapter's ``route``), a stub left visible by an earlier run, and the
durable marks ``shown`` and ``delivered`` the adapter sets through its :class:`~core.reply.Reply`.
The serializers turn an :class:`~core.types.Incoming` and the deliverable reply events into JSON
for the record and back.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
from collections.abc import Callable
from typing import Any

from core.store.base import IntakeRecord, IntakeStore
from core.types import (
    AdminAlert,
    Attachment,
    Button,
    ChatKey,
    FileLimit,
    FileReply,
    FinalText,
    Identity,
    Incoming,
    Notice,
    ReplyEvent,
)

log = logging.getLogger(__name__)

ATTACHMENT_BYTES = 1 << 20
"""An attachment's bytes held in memory are recorded up to this size; a larger file is recorded
without them. A spooled file (:mod:`core.media.spool`) is recorded by its path whatever its size."""


class DuplicateMessage(Exception):
    """The store already holds the message's key: it is (being) answered elsewhere, not here."""


def message_id(key: str, role: str) -> str:
    """The stable id of the conversation message a recorded message becomes (``role``: user or assistant)."""
    return f"{role[0]}-{hashlib.sha256(key.encode()).hexdigest()[:24]}"


class Receipt:
    """One recorded message on its way to being answered and delivered."""

    def __init__(
        self,
        store: IntakeStore,
        record: IntakeRecord,
        incoming: Incoming,
        *,
        recovered: bool = False,
        on_settled: Callable[[Receipt], None] | None = None,
    ) -> None:
        self.store = store
        self.record = record
        self.incoming = incoming
        self.recovered = recovered
        self.previous_ref = record.ref
        self.answer: list[dict[str, Any]] | None = record.answer
        self.settled = record.status == "delivered"
        self.counted = False
        """An earlier run stored this turn's answer, and its usage with it: the redo's is not added."""
        self._answer_kept = record.status == "answered"  # durably, in the record
        self._kept: list[dict[str, Any]] | None = record.answer if self._answer_kept else None
        self.so_far: list[ReplyEvent] = []
        """The deliverable events the core has produced so far (the answering task appends)."""
        self._on_settled = on_settled
        self._recorded: asyncio.Future[IntakeRecord | None] | None = None

    @property
    def key(self) -> str:
        """The messenger's key of the update."""
        return self.record.key

    @property
    def chat(self) -> str:
        """The chat's line."""
        return self.record.chat

    @property
    def route(self) -> dict[str, Any]:
        """What the adapter recorded about where to deliver."""
        return self.record.route

    def start_recording(self) -> asyncio.Future[IntakeRecord | None]:
        """Write the record (once); the future says whether the key was new."""
        if self._recorded is None:
            self._recorded = asyncio.ensure_future(self.store.record(self.record))
        return self._recorded

    @property
    def recording(self) -> bool:
        """The record's write is under way (not durable, not failed)."""
        return self._recorded is not None and not self._recorded.done()

    async def recorded(self) -> None:
        """Wait until the record is durable; raises :class:`DuplicateMessage` for a key seen before."""
        if self._recorded is None:  # recovered: it was recorded by an earlier run
            return
        if await asyncio.shield(self._recorded) is None:
            raise DuplicateMessage(self.key)

    async def answered(self, events: list[ReplyEvent]) -> None:
        """The core is done: keep what the adapter must deliver (an answer with nothing to show is delivered)."""
        answer = [event_to_dict(e) for e in events if deliverable(e)]
        self.answer = answer
        if self.settled:
            return  # the adapter delivered it already: one write fewer
        if answer == self._kept:
            return  # kept already, as the final text went out (``shown``): one write fewer
        if answer:
            await self.store.mark_answered(self.chat, self.key, answer)
            self._answer_kept, self._kept = True, answer
        else:
            await self.delivered(None)

    async def shown(self, ref: str) -> None:
        """Part of the answer is visible as ``ref``: a restart edits it instead of sending anew.

        A ``sending`` ref means the final text is about to go out as a new message: the answer so
        far is recorded first, so that a restart delivers (or finds) this very text, not a fresh
        answer from the model that may read differently.
        """
        self.previous_ref = ref
        if ref.startswith("sending") and not self._answer_kept and (self.answer or self.so_far):
            answer = self.answer or [event_to_dict(e) for e in self.so_far]
            # One write with the mark (it was two in a row on the way to every final text).
            await self.store.mark_answered(self.chat, self.key, answer, ref)
            self._answer_kept, self._kept = True, answer
            return
        await self.store.mark_shown(self.chat, self.key, ref)

    async def delivered(self, ref: str | None) -> None:
        """The person has the whole answer; it is never handed over again."""
        self.settled = True
        await self.store.mark_delivered(self.chat, self.key, ref)
        if self._on_settled is not None:
            self._on_settled(self)

    def left_undelivered(self) -> None:
        """The adapter stopped reading without delivering; the core may hand the answer over again."""
        if not self.settled and self._on_settled is not None:
            self._on_settled(self)


# --- serializing ------------------------------------------------------------------------------


def incoming_to_dict(msg: Incoming) -> dict[str, Any]:
    """The message as JSON (no ``raw``; attachment bytes only up to :data:`ATTACHMENT_BYTES`, spool files by path)."""
    return {
        "sender": str(msg.sender),
        "chat": {
            "platform": msg.chat.platform,
            "chat_id": msg.chat.chat_id,
            "topic": msg.chat.topic,
            "is_group": msg.chat.is_group,
        },
        "text": msg.text,
        "sender_name": msg.sender_name,
        "aliases": list(msg.aliases),
        "language_code": msg.language_code,
        "attachments": [_attachment_to_dict(a) for a in msg.attachments],
        "addressed": msg.addressed,
        "quoted_text": msg.quoted_text,
        "message_id": msg.message_id,
        "callback": msg.callback,
    }


def incoming_from_dict(data: dict[str, Any]) -> Incoming:
    """The message recorded by :func:`incoming_to_dict`."""
    chat = data["chat"]
    return Incoming(
        sender=Identity.parse(data["sender"]),
        chat=ChatKey(chat["platform"], chat["chat_id"], topic=chat.get("topic"), is_group=chat.get("is_group", False)),
        text=data.get("text", ""),
        sender_name=data.get("sender_name"),
        aliases=tuple(data.get("aliases", ())),
        language_code=data.get("language_code"),
        attachments=tuple(_attachment_from_dict(a) for a in data.get("attachments", ())),
        addressed=data.get("addressed", True),
        quoted_text=data.get("quoted_text"),
        message_id=data.get("message_id"),
        callback=data.get("callback"),
    )


def _attachment_to_dict(a: Attachment) -> dict[str, Any]:
    keep = a.data is not None and len(a.data) <= ATTACHMENT_BYTES
    return {
        "kind": a.kind,
        "filename": a.filename,
        "mime_type": a.mime_type,
        "size": a.size,
        "data": base64.b64encode(a.data).decode() if keep and a.data is not None else None,
        "path": a.path,
        "over_limit": [a.over_limit.name, a.over_limit.size] if a.over_limit else None,
        "duration": a.duration,
    }


def _attachment_from_dict(d: dict[str, Any]) -> Attachment:
    data = base64.b64decode(d["data"]) if d.get("data") else None
    path = d.get("path")
    if path and not os.path.exists(path):
        log.warning("a recorded attachment's spooled file is gone: %s", os.path.basename(path))
        path = None
    limit = FileLimit(*d["over_limit"]) if d.get("over_limit") else None
    return Attachment(
        d["kind"], d.get("filename"), d.get("mime_type"), d.get("size"), data,
        over_limit=limit, duration=d.get("duration"), path=path,
    )  # fmt: skip


def recorded_paths(data: dict[str, Any]) -> list[str]:
    """The spool files a recorded message names (read leniently: a record may be damaged)."""
    found = data.get("attachments") if isinstance(data, dict) else None
    return [a["path"] for a in found or () if isinstance(a, dict) and isinstance(a.get("path"), str)]


def deliverable(event: ReplyEvent) -> bool:
    """Whether an event is part of what the person must end up seeing (not typing or a preview)."""
    return isinstance(event, FinalText | Notice | FileReply | AdminAlert)


def _buttons(rows: tuple[tuple[Button, ...], ...]) -> list[list[list[str]]]:
    return [[[b.label, b.data] for b in row] for row in rows]


def _rows(data: list[list[list[str]]]) -> tuple[tuple[Button, ...], ...]:
    return tuple(tuple(Button(label, value) for label, value in row) for row in data)


def event_to_dict(event: ReplyEvent) -> dict[str, Any]:
    """A deliverable event as JSON."""
    if isinstance(event, FinalText):
        return {
            "type": "final",
            "text": event.text,
            "buttons": _buttons(event.buttons),
            "interrupted": event.interrupted,
            "streamed": event.streamed,
        }
    if isinstance(event, Notice):
        return {"type": "notice", "text": event.text, "buttons": _buttons(event.buttons), "is_error": event.is_error}
    if isinstance(event, FileReply):
        data = base64.b64encode(event.data).decode()
        return {
            "type": "file",
            "filename": event.filename,
            "data": data,
            "mime": event.mime_type,
            "caption": event.caption,
        }
    if isinstance(event, AdminAlert):
        return {"type": "alert", "to": list(event.to), "text": event.text, "buttons": _buttons(event.buttons)}
    raise ValueError(f"not a deliverable event: {type(event).__name__}")


def event_from_dict(data: dict[str, Any]) -> ReplyEvent:
    """The event recorded by :func:`event_to_dict`."""
    kind = data["type"]
    if kind == "final":
        return FinalText(data["text"], _rows(data["buttons"]), data["interrupted"], data["streamed"])
    if kind == "notice":
        return Notice(data["text"], _rows(data["buttons"]), data["is_error"])
    if kind == "file":
        return FileReply(data["filename"], base64.b64decode(data["data"]), data["mime"], data["caption"])
    if kind == "alert":
        return AdminAlert(tuple(data["to"]), data["text"], _rows(data["buttons"]))
    raise ValueError(f"unknown recorded event {kind!r}")
