"""Bring a WhatsApp ChatGPT chat along: file → preview → confirm → a new conversation.

The parsed export waits in memory (never on disk) until the person confirms the preview, says
which sender was the assistant, swaps the roles, or cancels. Importing the same file twice finds
the first import by its fingerprint instead of duplicating it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from core.i18n import DateSpan
from core.registry import Registry
from core.request import Request
from core.services import Services
from core.store.base import ConversationRecord, MessageRecord, Store
from core.types import Button, Notice, Progress, Reaction, ReplyEvent
from core.whatsapp.archive import ImportRejected, read_export
from core.whatsapp.dateorder import date_order_choice, date_order_note
from core.whatsapp.parser import ParsedChat, parse_export
from core.whatsapp.reread import swap_day_month
from core.whatsapp.roles import RoleGuess, Transcript, detect_roles, to_turns

log = logging.getLogger(__name__)

PENDING_SECONDS = 30 * 60
BATCH = 500  # messages per store write; progress is reported per batch
AUTHOR = "whatsapp"  # the stored messages' author
IMPORTING = ":importing"
"""Ends the source of an import's conversation until all its messages are stored."""
PROGRESS_FROM = 2 * BATCH  # smaller imports finish too fast to need progress
IMPORTABLE = (".txt", ".zip")


@dataclass(frozen=True)
class Pending:
    """A parsed export waiting for the person's answer."""

    chat: ParsedChat
    roles: RoleGuess
    name: str
    at: float


def parse_upload(
    filename: str, data: bytes, not_after: dt.datetime | None = None
) -> tuple[ParsedChat, RoleGuess, str]:
    """Read and parse an upload; raises ImportRejected when it is not a 1:1 WhatsApp export.

    ``not_after`` is the file's own time (when it was sent or written): no message is later,
    which decides a day/month order the file leaves open.
    """
    export = read_export(filename, data)
    chat = parse_export(export.text, not_after=not_after)
    if not chat.messages:
        raise ImportRejected("not_export", "no messages")
    roles = detect_roles(chat, filename)
    if roles.is_group:
        raise ImportRejected("group_chat", f"{len(chat.senders)} senders")
    name = export.chat_name or roles.assistant or "WhatsApp"
    return chat, roles, name


def wall_clock_epoch(when: dt.datetime) -> float:
    """Export times are the phone's wall clock with no zone; they are kept as if UTC."""
    return when.replace(tzinfo=dt.UTC).timestamp()


async def store_transcript(
    store: Store,
    scope: str,
    title: str,
    transcript: Transcript,
    clock: Callable[[], float] = time.time,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[ConversationRecord, bool]:
    """Store the turns as a new conversation; returns it and whether it already existed.

    The conversation is named by the export (its ``source``) only once every message is stored;
    until then its source ends in :data:`IMPORTING`. An import cut short (the process died between
    two batches, or within one on a power cut: the stored messages are then the first ones, in
    order) is finished by the next import of the same export, never taken for a whole one.
    """
    source = f"whatsapp:{transcript.fingerprint}"
    existing = await store.find_conversation_by_source(scope, source)
    if existing is not None:
        return existing, True
    turns = transcript.turns
    conv = await store.find_conversation_by_source(scope, source + IMPORTING)
    done = 0
    if conv is not None:
        done = sum(1 for m in await store.get_messages(conv.id) if m.author == AUTHOR)
        log.info("finishing an import cut short: %d of %d messages were stored", done, len(turns))
    else:
        first = wall_clock_epoch(turns[0].timestamp) if turns else clock()
        conv = ConversationRecord(
            id=uuid.uuid4().hex[:16], scope=scope, title=title, created_at=first, updated_at=first,
            source=source + IMPORTING,
        )  # fmt: skip
        await store.put_conversation(conv)
    for start in range(done, len(turns), BATCH):
        batch = turns[start : start + BATCH]
        await store.append_messages(
            [
                MessageRecord(
                    id=uuid.uuid4().hex,
                    conversation_id=conv.id,
                    role=t.role,
                    content=t.text,
                    created_at=wall_clock_epoch(t.timestamp),
                    author=AUTHOR,
                )
                for t in batch
            ]
        )
        if on_progress is not None:
            on_progress(start + len(batch), len(turns))
    # Make it the current conversation: the person continues where they left off.
    stored = await store.get_conversation(conv.id) or conv
    stored = dataclasses.replace(stored, updated_at=clock(), source=source)
    await store.put_conversation(stored)
    return stored, False


def register(registry: Registry, services: Services) -> WhatsAppImport:
    """Plug /import, the export file and the preview's buttons in."""
    feature = WhatsAppImport(services)
    registry.add_command("import", feature.help)
    registry.add_attachment_handler(feature.on_file)
    registry.add_callback("wa", feature.on_button)
    return feature


class WhatsAppImport:
    """The chat side of the import: the /import help, the file, the preview and its buttons."""

    def __init__(self, services: Services) -> None:
        self._s = services
        self._pending: dict[str, Pending] = {}


    def _t(self, request: Request, key: str, **values: object) -> str:
        return self._s.texts.get(request.lang, key, **values)

    def _key(self, request: Request) -> str:
        return f"{request.scope}|{request.user.id}"

    async def help(self, request: Request, args: str) -> AsyncIterator[ReplyEvent]:
        yield Notice(self._t(request, "import.help"))

    async def on_file(self, request: Request, text: str) -> AsyncIterator[ReplyEvent]:
        docs = [a for a in request.msg.attachments if a.kind == "document"]
        if not docs:
            return
        doc = docs[0]
        name = (doc.filename or "").lower()
        if not name.endswith(IMPORTABLE) and doc.mime_type not in ("text/plain", "application/zip"):
            return
        if not doc.fetched and doc.over_limit is not None:
            return  # the document reader names the limit that applies (core/media/documents.py)
        if not doc.fetched:
            yield Notice(self._t(request, "import.too_large", limit=50), is_error=True)
            return
        yield Reaction("👀")  # reading a large export takes a moment
        try:
            # Export times are wall clock in some zone: a day's slack on the time it arrived.
            arrived = dt.datetime.fromtimestamp(self._s.clock() + 86_400, dt.UTC).replace(tzinfo=None)
            data = await asyncio.to_thread(doc.read)
            chat, roles, chat_name = await asyncio.to_thread(parse_upload, doc.filename or "", data, arrived)
        except ImportRejected as e:
            log.info("WhatsApp import declined for user %s: %s", request.user.id, e.reason)
            yield Notice(self._t(request, f"import.rejected_{e.reason}", limit=50), is_error=True)
            return
        self._expire()
        pending = Pending(chat, roles, chat_name, self._s.clock())
        self._pending[self._key(request)] = pending
        yield self._ask(request, pending)

    def _expire(self) -> None:
        now = self._s.clock()
        for key in [k for k, p in self._pending.items() if now - p.at > PENDING_SECONDS]:
            del self._pending[key]

    def _ask(self, request: Request, pending: Pending) -> Notice:
        roles = pending.roles
        if roles.assistant is None or roles.needs_question:
            buttons = (
                *((Button(sender, f"wa:who:{i}"),) for i, sender in enumerate(pending.chat.senders)),
                (Button(self._t(request, "import.cancel_button"), "wa:no"),),
            )
            return Notice(self._t(request, "import.which", count=len(pending.chat.messages)), buttons=buttons)
        messages = pending.chat.messages
        text = self._t(
            request,
            "import.preview",
            count=len(to_turns(pending.chat, roles).turns),  # what will be imported, deleted ones left out
            span=DateSpan(messages[0].timestamp.date(), messages[-1].timestamp.date()),
            assistant=roles.assistant,
            user=roles.user or "?",
        )
        choices: tuple[tuple[Button, ...], ...] = (
            (Button(self._t(request, "import.yes_button"), "wa:yes"),),
            (Button(self._t(request, "import.swap_button"), "wa:swap"),),
            *date_order_choice(self._s.texts, request.lang, pending.chat),
            (Button(self._t(request, "import.cancel_button"), "wa:no"),),
        )
        return Notice(text + date_order_note(self._s.texts, request.lang, pending.chat), buttons=choices)

    async def on_button(self, request: Request, value: str) -> AsyncIterator[ReplyEvent]:
        self._expire()
        key = self._key(request)
        pending = self._pending.get(key)
        if pending is None:
            yield Notice(self._t(request, "import.expired"))
            return
        action, _, arg = value.partition(":")
        if action == "no":
            del self._pending[key]
            yield Notice(self._t(request, "import.cancelled"))
        elif action == "who" and arg.isdigit() and int(arg) < len(pending.chat.senders):
            roles = pending.roles.with_assistant(pending.chat.senders[int(arg)])
            self._pending[key] = dataclasses.replace(pending, roles=roles)
            yield self._ask(request, self._pending[key])
        elif action == "swap" and pending.roles.user is not None:
            roles = pending.roles.with_assistant(pending.roles.user)
            self._pending[key] = dataclasses.replace(pending, roles=roles)
            yield self._ask(request, self._pending[key])
        elif action == "order":
            self._pending[key] = dataclasses.replace(pending, chat=swap_day_month(pending.chat))
            yield self._ask(request, self._pending[key])
        elif action == "yes" and pending.roles.assistant is not None:
            del self._pending[key]
            async for event in self._import(request, pending):
                yield event

    async def _import(self, request: Request, pending: Pending) -> AsyncIterator[ReplyEvent]:
        transcript = to_turns(pending.chat, pending.roles)
        if not transcript.turns:
            yield Notice(self._t(request, "import.rejected_empty"), is_error=True)
            return
        title = self._t(request, "import.title", name=pending.name)
        if len(transcript.turns) >= PROGRESS_FROM:
            yield Reaction("👀")
        progress: asyncio.Queue[tuple[int, int]] = asyncio.Queue()

        def report(done: int, total: int) -> None:
            if total >= PROGRESS_FROM:
                progress.put_nowait((done, total))

        task = asyncio.create_task(
            store_transcript(self._s.store, request.scope, title, transcript, self._s.clock, report)
        )
        while not task.done() or not progress.empty():
            getter = asyncio.create_task(progress.get())
            done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                count, total = getter.result()
                yield Progress(self._t(request, "import.progress", done=count, total=total, count=total), count, total)
            else:
                getter.cancel()
        conv, existed = task.result()
        if existed:
            yield Notice(self._t(request, "import.duplicate", title=conv.title or title))
            return
        log.info("user %s imported %d WhatsApp messages", request.user.id, len(transcript.turns))
        yield Notice(self._t(request, "import.done", count=len(transcript.turns), title=title))
