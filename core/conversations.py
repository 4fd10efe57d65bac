"""Conversations: chatting into the active one, /new, /chats and its buttons, /retry."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterator

from core.answering import HISTORY_LIMIT, Answerer
from core.intake import Receipt, message_id
from core.readahead import ReadAhead, remember
from core.registry import Registry
from core.request import Request
from core.services import Services
from core.store.base import ConversationRecord, MessageRecord
from core.types import Button, Notice, ReplyEvent

TITLE_LENGTH = 48
RECOVERY_LOOKBACK = 8  # messages searched for one a crashed run stored already


def short_title(text: str, limit: int = TITLE_LENGTH) -> str:
    """A conversation title from its first message: the first line, cut at a word."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line
    cut = line[:limit].rsplit(" ", 1)[0] or line[:limit]
    return cut.rstrip(" ,.;:-") + "…"


class Conversations:
    """The conversation commands, and the chat message that goes to the model."""

    def __init__(self, services: Services, answerer: Answerer) -> None:
        self._s = services
        self._answerer = answerer
        self._active_ids: dict[str, str] = {}  # scope -> its active conversation's id last turn (core/readahead.py)

    def register(self, registry: Registry) -> None:
        """Plug /new, /chats, /retry and the conversation buttons in."""
        registry.add_command("new", self.new)
        registry.add_command("chats", self.chats)
        registry.add_command("retry", self.retry, uses_model=True)
        registry.add_callback("conv", self.switch)

    def _fresh(self, scope: str, title: str | None, current: list[ConversationRecord]) -> ConversationRecord:
        """A new conversation, or the scope's ``current`` one when it is empty (not stored yet)."""
        now = self._s.clock()
        if current and current[0].message_count == 0:
            return dataclasses.replace(current[0], updated_at=now, title=current[0].title or title)
        return ConversationRecord(id=uuid.uuid4().hex[:16], scope=scope, title=title, created_at=now, updated_at=now)

    async def _new_conversation(self, scope: str, title: str | None = None) -> ConversationRecord:
        conv = self._fresh(scope, title, await self._s.store.list_conversations(scope, 1))
        await self._s.store.put_conversation(conv)
        return conv

    async def _latest(
        self, scope: str, title: str | None, reads: ReadAhead | None = None
    ) -> tuple[ConversationRecord, bool]:
        """The scope's most recently used conversation (switching bumps it), or a new one (``title``)
        not stored yet; and whether it is that new one."""
        current = await (reads or self._s.store).list_conversations(scope, 1)
        return (current[0], False) if current else (self._fresh(scope, title, current), True)

    async def _active(self, scope: str) -> ConversationRecord:
        """The scope's most recently used conversation, or a new (stored) one."""
        conv, new = await self._latest(scope, None)
        if new:
            await self._s.store.put_conversation(conv)
        return conv

    def read_ahead(self, reads: ReadAhead, scope: str) -> None:
        """Start reading the scope's active conversation, and the messages of the one it had last time."""
        reads.conversations(scope)
        last = self._active_ids.get(scope)
        if last is not None:
            reads.messages(last, HISTORY_LIMIT)

    async def new(self, request: Request, args: str) -> AsyncIterator[ReplyEvent]:
        """/new: start an empty conversation (an empty current one is reused)."""
        await self._new_conversation(request.scope)
        yield self._s.notice(request.lang, "chat.group_new" if request.msg.chat.is_group else "chat.new")

    async def chats(self, request: Request, args: str) -> AsyncIterator[ReplyEvent]:
        """/chats: the recent conversations, each a button to switch to it."""
        lang = request.lang
        convs = await self._s.store.list_conversations(request.scope, 10)
        convs = [c for c in convs if c.message_count > 0]
        if not convs:
            yield self._s.notice(lang, "chat.chats_empty")
            return
        texts = self._s.texts
        lines = [texts.get(lang, "chat.chats_header")]
        buttons = []
        for conv in convs:
            title = conv.title or texts.get(lang, "chat.untitled")
            date = dt.datetime.fromtimestamp(conv.updated_at, dt.UTC).date()
            label = texts.get(lang, "chat.chats_item", title=title, date=date)
            lines.append(f"• {label}")
            buttons.append((Button(label, f"conv:{conv.id}"),))
        yield Notice("\n".join(lines), buttons=tuple(buttons))

    async def switch(self, request: Request, conv_id: str) -> AsyncIterator[ReplyEvent]:
        """A /chats button: make that conversation the active one."""
        conv = await self._s.store.get_conversation(conv_id)
        if conv is None or conv.scope != request.scope:
            yield self._s.notice(request.lang, "chat.not_found")
            return
        await self._s.store.put_conversation(dataclasses.replace(conv, updated_at=self._s.clock()))
        title = conv.title or self._s.texts.get(request.lang, "chat.untitled")
        yield self._s.notice(request.lang, "chat.switched", title=title, count=conv.message_count)

    async def retry(self, request: Request, args: str) -> AsyncIterator[ReplyEvent]:
        """/retry: answer the last question again, replacing the last answer."""
        conv = await self._active(request.scope)
        last = await self._s.store.get_messages(conv.id, last=1)
        if not last:
            yield self._s.notice(request.lang, "chat.retry_nothing")
            return
        if last[0].role == "assistant":
            await self._s.store.truncate_messages(conv.id, last[0].seq)
        async for event in self._answerer.answer(request, conv):
            yield event

    async def _say(
        self, record: MessageRecord, request: Request, conv: ConversationRecord | None
    ) -> list[MessageRecord]:
        """Store the person's message once its intake record is durable (a key seen before is not);
        ``conv`` first when it is new or newly titled. Done when a new person's record is durable
        too: the answer is stored after this, and shown after that."""
        await request.recorded()
        if conv is not None:
            await self._s.store.put_conversation(conv)
        stored = await self._s.store.append_messages([record])
        if request.user_saved is not None:
            await request.user_saved
        return stored

    async def _said_before(self, conv: ConversationRecord, said: MessageRecord, receipt: Receipt) -> bool:
        """After a restart: whether the message is stored already; an answer after it goes (it is redone).

        An answer of this turn that was stored had its usage counted with it (the two are written
        together): the redo's usage is then not counted again (``receipt.counted``).
        """
        recent = await self._s.store.get_messages(conv.id, last=RECOVERY_LOOKBACK)
        for message in recent:
            if message.id == said.id:
                answer = message_id(receipt.key, "assistant")
                receipt.counted = any(m.id == answer and m.seq > message.seq for m in recent)
                if message.seq + 1 < recent[-1].seq + 1:
                    await self._s.store.truncate_messages(conv.id, message.seq + 1)
                return True
        return False

    async def chat(self, request: Request) -> AsyncIterator[ReplyEvent]:
        """Store the person's message in the active conversation and answer it."""
        msg, text = request.msg, request.text
        # A new conversation is written once, with its title, beside the model request (before the message).
        conv, new = await self._latest(request.scope, short_title(text), request.reads)
        remember(self._active_ids, request.scope, conv.id)
        unsaved = new or not conv.title
        if not conv.title:
            conv = dataclasses.replace(conv, title=short_title(text))
        if new and request.reads is not None:
            request.reads.known(conv.id, HISTORY_LIMIT, [])  # nothing to read back from a new one
        receipt = request.receipt
        if unsaved and receipt is not None and receipt.recovered:
            await self._s.store.put_conversation(conv)  # before looking for the message in it
            unsaved = False
        content = text
        if msg.quoted_text:
            quoted = "\n".join(f"> {line}" for line in msg.quoted_text.splitlines())
            content = f"{quoted}\n\n{text}"
        if msg.chat.is_group:
            content = f"{msg.sender_name or msg.sender}: {content}"
        record = MessageRecord(
            id=message_id(receipt.key, "user") if receipt else uuid.uuid4().hex,
            conversation_id=conv.id,
            role="user",
            content=content,
            created_at=self._s.clock(),
            author=str(msg.sender),
        )
        if receipt is not None and receipt.recovered and await self._said_before(conv, record, receipt):
            stored: asyncio.Future[list[MessageRecord]] = asyncio.get_running_loop().create_future()
            stored.set_result([record])
        else:
            # Stored while the model is asked rather than before: the request need not wait for the disk.
            stored = asyncio.ensure_future(self._say(record, request, conv if unsaved else None))
        try:
            async for event in self._answerer.answer(request, conv, (record, stored)):
                yield event
        finally:
            await stored  # durable before the turn ends, whatever became of the answer
