"""The pipeline as an ordered list of small stages (the shape of aiogram's middlewares).

``identify`` turns a message into a :class:`Request`; then each stage either answers it itself
(a refusal, a limit) or hands it to the next: access → attachments → input → rate → budget →
route. The last, ``route``, finds the button, command or conversation that answers it in the
:class:`~core.registry.Registry`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence

from core.access import new_user_status, remember_aliases, with_aliases
from core.admission import Admission
from core.commands import Command
from core.conversations import Conversations
from core.intake import Receipt
from core.readahead import ReadAhead, remember
from core.registry import Registry
from core.request import Request, scope_of
from core.services import Services
from core.store.base import UserRecord
from core.text import clean_text
from core.types import Incoming, ReplyEvent

log = logging.getLogger(__name__)

Next = Callable[[Request], AsyncIterator[ReplyEvent]]
"""The rest of the pipeline after a stage."""

Stage = Callable[[Request, Next], AsyncIterator[ReplyEvent]]
"""One step: answer the request itself, or pass it (perhaps changed) to ``next``."""


def chain(stages: Sequence[Stage], end: Next) -> Next:
    """The stages in order, ending in ``end``."""
    handler = end
    for stage in reversed(stages):
        handler = _bind(stage, handler)
    return handler


def _bind(stage: Stage, after: Next) -> Next:
    def run(request: Request) -> AsyncIterator[ReplyEvent]:
        return stage(request, after)

    return run


class RateLimit:
    """At most ``per_minute`` chat messages per user in any sliding minute."""

    def __init__(self, per_minute: int, clock: Callable[[], float]) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._recent: dict[str, deque[float]] = {}

    def allow(self, user_id: str) -> bool:
        """Count one message if the user is within the limit."""
        now = self._clock()
        recent = self._recent.setdefault(user_id, deque())
        while recent and recent[0] <= now - 60:
            recent.popleft()
        if len(recent) >= self.per_minute:
            return False
        recent.append(now)
        return True



def new_user_id(receipt: Receipt | None) -> str:
    """A new person's id: from the message that made them, when it was received durably, so that
    the same message answered again after a crash makes the same person (their record is written
    beside the model request, and their conversation may be durable before it)."""
    if receipt is None:
        return uuid.uuid4().hex[:12]
    return hashlib.sha256(f"user|{receipt.key}".encode()).hexdigest()[:12]


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


class Pipeline:
    """identify, then the stages, then route."""

    def __init__(
        self, services: Services, registry: Registry, admission: Admission, conversations: Conversations
    ) -> None:
        self._s = services
        self._registry = registry
        self._admission = admission
        self._conversations = conversations
        self._user_ids: dict[str, str] = {}  # sender -> user id, to guess a turn's scope (core/readahead.py)
        self._rate = RateLimit(services.settings.rate_per_minute, services.clock)
        self.stages: list[Stage] = [self.access, self.attachments, self.input, self.rate, self.budget]
        self._run = chain(self.stages, self.route)

    async def __call__(
        self, msg: Incoming, command: Command | None, receipt: Receipt | None = None
    ) -> AsyncIterator[ReplyEvent]:
        """Run one message through the whole pipeline (``receipt``: it was received durably)."""
        reads = self._read_ahead(msg, command, receipt)
        request: Request | None = None
        try:
            request = await self.identify(msg, command, receipt, reads)
            if receipt is not None and not request.is_chat:
                await receipt.recorded()  # only reading and the model request run beside the record's write
            async for event in self._run(request):
                yield event
        finally:
            if reads is not None:
                reads.close()
            if request is not None and request.user_saved is not None:
                await request.user_saved  # durable before the turn ends, whatever the stages decided

    def _read_ahead(self, msg: Incoming, command: Command | None, receipt: Receipt | None) -> ReadAhead | None:
        """A plain chat turn's reads of its checks and conversation, started beside its user's (core/readahead.py)."""
        if command is not None or msg.callback is not None or msg.attachments:
            return None  # an attachment's reader may store before the conversation is read
        if receipt is not None and receipt.recovered:
            return None  # may truncate its conversation before reading it
        reads = ReadAhead(self._s.store)
        for key in self._registry.chat_meta:
            reads.meta(key)
        user_id = self._user_ids.get(str(msg.sender))  # the scope needs it: a first message has none
        if user_id is not None or msg.chat.is_group:
            self._conversations.read_ahead(reads, scope_of(msg, user_id or ""))
        return reads

    async def identify(
        self, msg: Incoming, command: Command | None, receipt: Receipt | None = None, reads: ReadAhead | None = None
    ) -> Request:
        """Find or create the sender's user; pick their language; know whether they administer."""
        identities = (str(msg.sender), *msg.aliases)
        # A plain chat turn's new person is written beside the model request (their record is a
        # file replaced durably: a quarter of a second of a first message under load).
        beside = reads is not None and receipt is not None
        user, is_new, user_saved = await self._user(msg, identities, receipt, beside)
        remember(self._user_ids, identities[0], user.id)
        texts, settings = self._s.texts, self._s.settings
        lang = texts.pick_language(user.lang, msg.language_code, settings.default_lang)
        admin = self._s.access.is_admin(user, identities)
        return Request(msg, user, lang, admin, command, clean_text(msg.text), is_new, receipt, reads, user_saved)

    async def _user(
        self, msg: Incoming, identities: tuple[str, ...], receipt: Receipt | None, beside: bool
    ) -> tuple[UserRecord, bool, asyncio.Future[None] | None]:
        """The sender's user, whether they are new, and their record's write when it is under way
        (``beside``: an approved new person's plain chat turn; otherwise it is durable already)."""
        store = self._s.store
        user = await store.find_user(str(msg.sender))
        if user is not None:
            if msg.sender_name and user.display_name != msg.sender_name:
                user = dataclasses.replace(user, display_name=msg.sender_name)
                await store.put_user(user)
            return await remember_aliases(store, user, identities), False, None
        user = UserRecord(
            id=new_user_id(receipt),
            identities=(str(msg.sender),),
            display_name=msg.sender_name,
            status=new_user_status(self._s.settings, identities),
            created_at=self._s.clock(),
        )
        user = with_aliases(user, identities)
        log.info("new user %s (%s), status %s", user.id, msg.sender, user.status)
        if beside and user.status == "approved":
            saving = asyncio.ensure_future(store.put_user(user))
            saving.add_done_callback(_retrieved)  # awaited by the turn; a failure is raised there
            return user, True, saving
        await store.put_user(user)
        return user, True, None

    async def access(self, request: Request, after: Next) -> AsyncIterator[ReplyEvent]:
        """Only approved people and admins get further, except to commands open before approval."""
        command = request.command
        spec = self._registry.command(command.name) if command is not None else None
        if command is not None and spec is not None and spec.before_approval(request):
            async for event in spec.handler(request, command.args):
                yield event
            if spec.recheck and not _allowed(request):
                now = await self._s.store.find_user(str(request.msg.sender))
                if now is not None and now.status != "approved":  # it did not let them in
                    async for event in self._admission.refuse(dataclasses.replace(request, user=now)):
                        yield event
            return
        events = after(request) if _allowed(request) else self._admission.refuse(request)
        async for event in events:
            yield event

    async def attachments(self, request: Request, after: Next) -> AsyncIterator[ReplyEvent]:
        """Offer files to the handlers that take them (a WhatsApp export), then to the readers that
        turn them into text (voice notes, documents)."""
        if request.is_chat and request.msg.attachments:
            for handler in self._registry.attachment_handlers:
                handled = False
                async for event in handler(request, request.text):
                    handled = True
                    yield event
                if handled:
                    return
            for reader in self._registry.attachment_readers:
                outcome: Request | None = None
                read = False
                async for item in reader(request):
                    read = True
                    if isinstance(item, Request):
                        outcome = item
                    else:
                        yield item
                if read:
                    if outcome is None:
                        return
                    request = outcome
                    break
        async for event in after(request):
            yield event

    async def input(self, request: Request, after: Next) -> AsyncIterator[ReplyEvent]:
        """Decline what the model cannot take: nothing to read, or too much."""
        limit = self._s.settings.max_message_chars
        lang, text = request.lang, request.text
        if request.is_chat and not text:
            yield self._unsupported(request) if request.msg.attachments else self._s.notice(lang, "input.empty")
        elif request.is_chat and len(text) > limit:
            yield self._s.notice(lang, "input.too_long", length=len(text), limit=limit)
        else:
            async for event in after(request):
                yield event

    def _unsupported(self, request: Request) -> ReplyEvent:
        lang, kind = request.lang, request.msg.attachments[0].kind
        if kind == "document":
            return self._s.notice(lang, "input.unsupported_document")
        kind_key = kind if kind in ("voice", "photo", "sticker", "video", "audio") else "other"
        return self._s.notice(lang, "input.unsupported", kind=self._s.texts.get(lang, f"kind.{kind_key}"))

    async def rate(self, request: Request, after: Next) -> AsyncIterator[ReplyEvent]:
        """A person sends at most so many chat messages a minute."""
        if request.is_chat and not self._rate.allow(request.user.id):
            yield self._s.notice(request.lang, "input.busy", limit=self._rate.per_minute)
            return
        async for event in after(request):
            yield event

    async def budget(self, request: Request, after: Next) -> AsyncIterator[ReplyEvent]:
        """What goes to the model passes the pre-chat checks (budgets) first."""
        command = request.command
        spec = self._registry.command(command.name) if command is not None else None
        if request.is_chat or (spec is not None and spec.uses_model):
            refusal = await self._registry.refusal(request)
            if refusal is not None:
                yield refusal
                return
        async for event in after(request):
            yield event

    async def route(self, request: Request) -> AsyncIterator[ReplyEvent]:
        """The button, the command or the conversation that answers the request."""
        if request.msg.callback is not None:
            kind, _, value = request.msg.callback.partition(":")
            handler = self._registry.callback(kind)
            if handler is None:
                log.warning("unknown button data %r from %s", request.msg.callback, request.msg.sender)
                return
            events = handler(request, value)
        elif request.command is not None:
            spec = self._registry.command(request.command.name)
            if spec is None:
                yield self._s.notice(request.lang, "input.unknown_command", command=request.command.name)
                return
            events = spec.handler(request, request.command.args)
        else:
            events = self._conversations.chat(request)
        async for event in events:
            yield event


def _allowed(request: Request) -> bool:
    return request.user.status == "approved" or request.admin
