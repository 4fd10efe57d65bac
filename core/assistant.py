"""The one entry into the core: an incoming message in, reply events out.

Pipeline (DESIGN.md): identify → access → command or chat → context → model stream → store →
usage. Messages of one chat are handled one at a time in arrival order (a FIFO lock per chat,
taken before the first await); different chats run concurrently. ``/cancel`` is handled out of
band, so it can stop an answer that is being generated.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import time
import unicodedata
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from core import accounts, importer, outbox, userdata
from core import admin as admin_feature
from core.access import AccessControl, new_user_status
from core.catalogue import Catalogue
from core.commands import MENU, Command, parse_command
from core.context import ContextTooLarge, fit_context, turns_from_history
from core.i18n import Texts
from core.llm import Delta, ModelClient, ModelError, Stop, Usage
from core.metrics import Metrics
from core.settings import Settings
from core.store.base import (
    ConversationRecord,
    MessageRecord,
    MessageStatus,
    Store,
    StoreError,
    UsageRecord,
    UserRecord,
)
from core.tokens import count_message_tokens, count_tokens
from core.turn import Handler, Turn
from core.types import (
    AdminAlert,
    Button,
    FinalText,
    Incoming,
    Notice,
    ReplyEvent,
    StreamStart,
    TextDelta,
)

log = logging.getLogger(__name__)

HISTORY_LIMIT = 400  # messages read back for the context; the window trims further
INSTRUCTIONS_LIMIT = 2000
TITLE_LENGTH = 48
_END = object()


def clean_text(text: str) -> str:
    """Normalise line ends and drop control characters (keeping newlines and tabs)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(c for c in text if c in "\n\t" or unicodedata.category(c) != "Cc").strip()


def short_title(text: str, limit: int = TITLE_LENGTH) -> str:
    """A conversation title from its first message: the first line, cut at a word."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line
    cut = line[:limit].rsplit(" ", 1)[0] or line[:limit]
    return cut.rstrip(" ,.;:-") + "…"


class _ChatLocks:
    """FIFO locks per chat that disappear when nobody holds or waits for them."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def acquire_slot(self, key: str) -> asyncio.Lock:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        return lock

    def release_slot(self, key: str) -> None:
        lock, users = self._locks[key]
        if users <= 1:
            del self._locks[key]
        else:
            self._locks[key] = (lock, users - 1)


class Assistant:
    """Ferry's conversation core. Adapters call :meth:`handle` and render what it yields."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        model: ModelClient,
        *,
        catalogue: Catalogue | None = None,
        texts: Texts | None = None,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.model = model
        self.catalogue = catalogue or Catalogue.load(settings.config_dir / "models.toml")
        self.texts = texts or Texts.load(settings.config_dir / "locales")
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.access = AccessControl(settings, store, clock)
        self._locks = _ChatLocks()
        self._cancels: dict[str, asyncio.Event] = {}
        self._recent: dict[str, deque[float]] = {}
        self._commands: dict[str, Handler] = {}
        self._callbacks: dict[str, Handler] = {}
        self._attachment_handlers: list[Handler] = []
        self._chat_checks: list[Callable[[Turn], Awaitable[Notice | None]]] = []
        self._answer_hooks: list[Callable[[Turn, UsageRecord], AsyncIterator[ReplyEvent]]] = []
        accounts.register(self)
        admin_feature.register(self)
        userdata.register(self)
        importer.register(self)

    # --- extension seams: features in their own modules plug in here ------------------------

    def add_command(self, name: str, handler: Handler) -> None:
        """Handle ``/name``; the handler gets the arguments text."""
        self._commands[name] = handler

    def add_callback(self, prefix: str, handler: Handler) -> None:
        """Handle button data ``prefix:value``; the handler gets ``value``."""
        self._callbacks[prefix] = handler

    def add_attachment_handler(self, handler: Handler) -> None:
        """Offer a message with attachments to a handler; it yields nothing when not its kind."""
        self._attachment_handlers.append(handler)

    def add_chat_check(self, check: Callable[[Turn], Awaitable[Notice | None]]) -> None:
        """Run before a message goes to the model; a returned notice declines the message."""
        self._chat_checks.append(check)

    def add_answer_hook(self, hook: Callable[[Turn, UsageRecord], AsyncIterator[ReplyEvent]]) -> None:
        """Run after an answer is stored and accounted (budgets, alerts)."""
        self._answer_hooks.append(hook)

    async def start(self) -> None:
        """Open the store and make sure someone can become admin."""
        await self.store.open()
        await self.access.ensure_claim_code()

    async def close(self) -> None:
        for event in self._cancels.values():
            event.set()
        await self.store.close()
        aclose = getattr(self.model, "aclose", None)
        if aclose is not None:
            await aclose()

    # --- what adapters use besides handle ---------------------------------------------------

    def text(self, lang: str, key: str, **values: Any) -> str:
        """One of the bot's texts, for the few an adapter must show itself."""
        return self.texts.get(lang, key, **values)

    def language(self, language_code: str | None) -> str:
        """The bot language for a messenger's language code."""
        return self.texts.pick_language(language_code, self.settings.default_lang)

    async def alerts(self, platform: str, interval: float = 2.0) -> AsyncIterator[AdminAlert]:
        """Alerts the other messenger's process left for this one's people, as they come."""
        while True:
            try:
                for alert in await outbox.collect(self.store, platform, self.clock):
                    yield alert
            except StoreError as e:
                log.warning("could not read the alert outbox: %s", e)
            await asyncio.sleep(interval)

    def command_menu(self, lang: str) -> list[tuple[str, str]]:
        """(command, description) pairs for a messenger's command menu."""
        return [(name, self.texts.get(lang, f"cmd.{name}")) for name in MENU]

    # --- the entry --------------------------------------------------------------------------

    async def handle(self, msg: Incoming) -> AsyncIterator[ReplyEvent]:
        """Handle one message and yield what to send back, in order."""
        if msg.chat.is_group and not msg.addressed and msg.callback is None:
            return
        command = parse_command(msg.text) if msg.callback is None else None
        if command is not None and command.name == "cancel":
            async for event in self._guarded(msg, self._cancel(msg)):
                yield event
            return
        key = str(msg.chat)
        lock = self._locks.acquire_slot(key)
        try:
            async with lock:
                async for event in self._guarded(msg, self._pipeline(msg, command)):
                    yield event
        finally:
            self._locks.release_slot(key)

    async def _guarded(self, msg: Incoming, events: AsyncIterator[ReplyEvent]) -> AsyncIterator[ReplyEvent]:
        """Turn failures into one sentence for the person and a traceback for the operator."""
        platform = msg.chat.platform
        try:
            async for event in events:
                if isinstance(event, AdminAlert):
                    mine, elsewhere = outbox.split(event, platform)
                    for other, alert in elsewhere.items():
                        await outbox.post(self.store, other, alert, self.clock())
                    if mine is None:
                        continue
                    event = mine
                yield event
            self.metrics.messages.labels(platform, "ok").inc()
        except StoreError as e:
            self.metrics.messages.labels(platform, "error").inc()
            self.metrics.errors.labels("store").inc()
            log.error("store failed while handling a message from %s: %s", msg.sender, e)
            yield Notice(self.texts.get(self.language(msg.language_code), "error.store"), is_error=True)
        except Exception:
            self.metrics.messages.labels(platform, "error").inc()
            self.metrics.errors.labels("internal").inc()
            log.exception("unexpected error while handling a message from %s", msg.sender)
            yield Notice(self.texts.get(self.language(msg.language_code), "error.internal"), is_error=True)

    # --- pipeline ---------------------------------------------------------------------------

    async def _pipeline(self, msg: Incoming, command: Command | None) -> AsyncIterator[ReplyEvent]:
        identities = (str(msg.sender), *msg.aliases)
        user, is_new = await self._identify(msg, identities)
        lang = self.texts.pick_language(user.lang, msg.language_code, self.settings.default_lang)
        admin = self.access.is_admin(user, identities)

        if command is not None and command.name == "claim":
            yield self._notice(lang, f"access.claim_{await self.access.claim(user, command.args)}")
            return
        if command is not None and command.name == "link" and command.args and user.status != "blocked":
            # A link code proves the sender owns an account that already has access.
            async for event in self._commands["link"](Turn(msg, user, lang, admin), command.args):
                yield event
            if user.status != "approved" and not admin:
                after = await self.store.find_user(str(msg.sender))
                if after is not None and after.status != "approved":  # the code was wrong
                    async for event in self._refuse(after, lang, is_new, identities):
                        yield event
            return
        if user.status != "approved" and not admin:
            async for event in self._refuse(user, lang, is_new, identities):
                yield event
            return
        if msg.callback is not None:
            async for event in self._callback(msg, user, lang, admin):
                yield event
            return

        text = clean_text(msg.text)
        if command is not None:
            async for event in self._command(msg, user, lang, admin, command):
                yield event
            return
        if msg.attachments:
            turn = Turn(msg, user, lang, admin)
            for handler in self._attachment_handlers:
                handled = False
                async for event in handler(turn, text):
                    handled = True
                    yield event
                if handled:
                    return
        if not text:
            if msg.attachments:
                yield self._unsupported(lang, msg)
            else:
                yield self._notice(lang, "input.empty")
            return
        limit = self.settings.max_message_chars
        if len(text) > limit:
            yield self._notice(lang, "input.too_long", length=len(text), limit=limit)
            return
        if not self._within_rate(user.id):
            yield self._notice(lang, "input.busy", limit=self.settings.rate_per_minute)
            return
        refusal = await self._refusal(Turn(msg, user, lang, admin))
        if refusal is not None:
            yield refusal
            return
        async for event in self._chat(msg, user, lang, text):
            yield event

    async def _refusal(self, turn: Turn) -> Notice | None:
        """The first pre-chat check (budgets) that declines a message to the model."""
        for check in self._chat_checks:
            refusal = await check(turn)
            if refusal is not None:
                return refusal
        return None

    async def _identify(self, msg: Incoming, identities: tuple[str, ...]) -> tuple[UserRecord, bool]:
        user = await self.store.find_user(str(msg.sender))
        if user is not None:
            if msg.sender_name and user.display_name != msg.sender_name:
                user = dataclasses.replace(user, display_name=msg.sender_name)
                await self.store.put_user(user)
            return user, False
        user = UserRecord(
            id=uuid.uuid4().hex[:12],
            identities=(str(msg.sender),),
            display_name=msg.sender_name,
            status=new_user_status(self.settings, identities),
            created_at=self.clock(),
        )
        await self.store.put_user(user)
        log.info("new user %s (%s), status %s", user.id, msg.sender, user.status)
        return user, True

    async def _refuse(
        self, user: UserRecord, lang: str, is_new: bool, identities: tuple[str, ...]
    ) -> AsyncIterator[ReplyEvent]:
        if user.status == "blocked":
            yield self._notice(lang, "access.blocked")
        elif user.status == "denied" or self.settings.access == "allowlist":
            yield self._notice(lang, "access.denied")
        elif is_new:
            yield self._notice(lang, "access.asked_admin")
            admins = await self.access.admin_identities()
            if admins:
                yield AdminAlert(
                    to=admins,
                    text=self.texts.get(
                        self.settings.default_lang,
                        "access.request",
                        name=user.display_name or identities[0],
                        identity=", ".join(identities),
                    ),
                    buttons=(self._access_buttons(user.id, self.settings.default_lang),),
                )
        else:
            yield self._notice(lang, "access.still_pending")

    def _access_buttons(self, user_id: str, lang: str) -> tuple[Button, ...]:
        return (
            Button(self.texts.get(lang, "access.approve_button"), f"acc:approve:{user_id}"),
            Button(self.texts.get(lang, "access.deny_button"), f"acc:deny:{user_id}"),
        )

    def _within_rate(self, user_id: str) -> bool:
        now = self.clock()
        recent = self._recent.setdefault(user_id, deque())
        while recent and recent[0] <= now - 60:
            recent.popleft()
        if len(recent) >= self.settings.rate_per_minute:
            return False
        recent.append(now)
        return True

    def _notice(self, lang: str, key: str, **values: Any) -> Notice:
        return Notice(self.texts.get(lang, key, **values), is_error=key.startswith("error."))

    def _unsupported(self, lang: str, msg: Incoming) -> Notice:
        kind = msg.attachments[0].kind
        if kind == "document":
            return self._notice(lang, "input.unsupported_document")
        kind_key = kind if kind in ("voice", "photo", "sticker", "video", "audio") else "other"
        return self._notice(lang, "input.unsupported", kind=self.texts.get(lang, f"kind.{kind_key}"))

    # --- commands ---------------------------------------------------------------------------

    async def _command(
        self, msg: Incoming, user: UserRecord, lang: str, admin: bool, cmd: Command
    ) -> AsyncIterator[ReplyEvent]:
        name = cmd.name
        if name == "start":
            yield self._notice(lang, "start.welcome", name=user.display_name or "")
        elif name == "help":
            yield Notice(self._help(lang))
        elif name == "new":
            await self._new_conversation(self._scope(msg, user))
            yield self._notice(lang, "chat.group_new" if msg.chat.is_group else "chat.new")
        elif name == "chats":
            yield await self._list_chats(msg, user, lang)
        elif name == "retry":
            refusal = await self._refusal(Turn(msg, user, lang, admin))
            if refusal is not None:
                yield refusal
                return
            async for event in self._retry(msg, user, lang):
                yield event
        elif name == "model":
            yield await self._model(user, lang, cmd.args)
        elif name == "instructions":
            yield await self._instructions(user, lang, cmd.args)
        elif name == "lang":
            yield await self._set_lang(user, lang, cmd.args)
        elif name in ("approve", "deny"):
            async for event in self._decide(user, lang, admin, name, cmd.args):
                yield event
        elif name in self._commands:
            async for event in self._commands[name](Turn(msg, user, lang, admin), cmd.args):
                yield event
        else:
            yield self._notice(lang, "input.unknown_command", command=name)

    def _help(self, lang: str) -> str:
        lines = [self.texts.get(lang, "help.header"), ""]
        for name, description in self.command_menu(lang):
            lines.append(self.texts.get(lang, "help.line", command=name, description=description))
        lines += ["", self.texts.get(lang, "help.footer")]
        return "\n".join(lines)

    async def _cancel(self, msg: Incoming) -> AsyncIterator[ReplyEvent]:
        event = self._cancels.get(str(msg.chat))
        if event is None or event.is_set():
            user = await self.store.find_user(str(msg.sender))
            lang = self.texts.pick_language(user.lang if user else None, msg.language_code)
            yield self._notice(lang, "chat.cancel_nothing")
            return
        event.set()  # the running answer ends itself with its "cut off" text

    async def _callback(
        self, msg: Incoming, user: UserRecord, lang: str, admin: bool
    ) -> AsyncIterator[ReplyEvent]:
        kind, _, value = (msg.callback or "").partition(":")
        if kind == "acc":
            decision, _, who = value.partition(":")
            async for event in self._decide(user, lang, admin, decision, who):
                yield event
        elif kind == "conv":
            yield await self._switch(msg, user, lang, value)
        elif kind == "model":
            yield await self._model(user, lang, value)
        elif kind == "lang":
            yield await self._set_lang(user, lang, value)
        elif kind in self._callbacks:
            async for event in self._callbacks[kind](Turn(msg, user, lang, admin), value):
                yield event
        else:
            log.warning("unknown button data %r from %s", msg.callback, msg.sender)

    async def _decide(
        self, user: UserRecord, lang: str, admin: bool, decision: str, who: str
    ) -> AsyncIterator[ReplyEvent]:
        if not admin:
            yield self._notice(lang, "access.admins_only")
            return
        if not who.strip():
            yield self._notice(lang, "access.usage_approve")
            return
        target = await self.access.find_user(who)
        if target is None:
            yield self._notice(lang, "access.no_such_user", who=who)
            return
        approve = decision == "approve"
        target = await self.access.set_status(target, "approved" if approve else "denied")
        name = target.display_name or (target.identities[0] if target.identities else target.id)
        yield self._notice(lang, "access.approved" if approve else "access.denied_admin", name=name)
        target_lang = self.texts.pick_language(target.lang, self.settings.default_lang)
        yield AdminAlert(
            to=target.identities,
            text=self.texts.get(target_lang, "access.approved_user" if approve else "access.denied_user"),
        )

    async def _model(self, user: UserRecord, lang: str, wanted: str) -> Notice:
        choices = self.settings.model_choices
        current = user.model if user.model in choices else self.settings.model
        if not wanted:
            lines = [self.texts.get(lang, "model.current", model=current), ""]
            for name in choices:
                info = self.catalogue.get(name)
                lines.append(
                    "• "
                    + self.texts.get(
                        lang,
                        "model.info",
                        model=name,
                        context=f"{info.context_window:,}",
                        input=f"{info.input_price:g}",
                        output=f"{info.output_price:g}",
                    )
                )
            buttons = tuple((Button(("✓ " if n == current else "") + n, f"model:{n}"),) for n in choices)
            return Notice("\n".join(lines), buttons=buttons)
        if wanted not in choices:
            return self._notice(lang, "model.unknown", model=wanted, choices=", ".join(choices))
        await self.store.put_user(dataclasses.replace(user, model=wanted))
        return self._notice(lang, "model.set", model=wanted)

    async def _instructions(self, user: UserRecord, lang: str, args: str) -> Notice:
        if not args:
            if not user.instructions:
                return self._notice(lang, "instructions.none")
            return self._notice(lang, "instructions.show", text=user.instructions)
        if args.lower() in ("clear", "reset", "hapus", "off"):
            await self.store.put_user(dataclasses.replace(user, instructions=None))
            return self._notice(lang, "instructions.cleared")
        text = clean_text(args)
        if len(text) > INSTRUCTIONS_LIMIT:
            return self._notice(lang, "instructions.too_long", limit=INSTRUCTIONS_LIMIT)
        await self.store.put_user(dataclasses.replace(user, instructions=text))
        return self._notice(lang, "instructions.set")

    async def _set_lang(self, user: UserRecord, lang: str, wanted: str) -> Notice:
        languages = self.texts.languages
        if not wanted:
            names = {"en": "English", "id": "Bahasa Indonesia"}
            buttons = (tuple(Button(names.get(code, code), f"lang:{code}") for code in languages),)
            return Notice(self.texts.get(lang, "lang.choose"), buttons=buttons)
        code = wanted.strip().lower()
        if code not in languages:
            return self._notice(lang, "lang.unknown", choices=", ".join(languages))
        await self.store.put_user(dataclasses.replace(user, lang=code))
        return self._notice(code, "lang.set")

    # --- conversations ----------------------------------------------------------------------

    def _scope(self, msg: Incoming, user: UserRecord) -> str:
        return f"group:{msg.chat}" if msg.chat.is_group else f"user:{user.id}"

    async def _new_conversation(self, scope: str, title: str | None = None) -> ConversationRecord:
        now = self.clock()
        current = await self.store.list_conversations(scope, 1)
        if current and current[0].message_count == 0:
            conv = dataclasses.replace(current[0], updated_at=now, title=current[0].title or title)
        else:
            conv = ConversationRecord(
                id=uuid.uuid4().hex[:16], scope=scope, title=title, created_at=now, updated_at=now
            )
        await self.store.put_conversation(conv)
        return conv

    async def _active_conversation(self, scope: str, title: str | None = None) -> ConversationRecord:
        """The scope's most recently used conversation (switching bumps it), or a new one (``title``)."""
        current = await self.store.list_conversations(scope, 1)
        return current[0] if current else await self._new_conversation(scope, title)

    async def _list_chats(self, msg: Incoming, user: UserRecord, lang: str) -> Notice:
        convs = await self.store.list_conversations(self._scope(msg, user), 10)
        convs = [c for c in convs if c.message_count > 0]
        if not convs:
            return self._notice(lang, "chat.chats_empty")
        lines = [self.texts.get(lang, "chat.chats_header")]
        buttons = []
        for conv in convs:
            title = conv.title or self.texts.get(lang, "chat.untitled")
            date = dt.datetime.fromtimestamp(conv.updated_at, dt.UTC).strftime("%d %b %Y")
            label = self.texts.get(lang, "chat.chats_item", title=title, date=date)
            lines.append(f"• {label}")
            buttons.append((Button(label, f"conv:{conv.id}"),))
        return Notice("\n".join(lines), buttons=tuple(buttons))

    async def _switch(self, msg: Incoming, user: UserRecord, lang: str, conv_id: str) -> Notice:
        conv = await self.store.get_conversation(conv_id)
        if conv is None or conv.scope != self._scope(msg, user):
            return self._notice(lang, "chat.not_found")
        await self.store.put_conversation(dataclasses.replace(conv, updated_at=self.clock()))
        title = conv.title or self.texts.get(lang, "chat.untitled")
        return self._notice(lang, "chat.switched", title=title, count=conv.message_count)

    # --- chatting ---------------------------------------------------------------------------

    async def _chat(self, msg: Incoming, user: UserRecord, lang: str, text: str) -> AsyncIterator[ReplyEvent]:
        # A new conversation is written once, with its title, on the way to the model request.
        conv = await self._active_conversation(self._scope(msg, user), short_title(text))
        if not conv.title:
            conv = dataclasses.replace(conv, title=short_title(text))
            await self.store.put_conversation(conv)
        content = text
        if msg.quoted_text:
            quoted = "\n".join(f"> {line}" for line in msg.quoted_text.splitlines())
            content = f"{quoted}\n\n{text}"
        if msg.chat.is_group:
            content = f"{msg.sender_name or msg.sender}: {content}"
        said = MessageRecord(
            id=uuid.uuid4().hex,
            conversation_id=conv.id,
            role="user",
            content=content,
            created_at=self.clock(),
            author=str(msg.sender),
        )
        # Stored while the model is asked rather than before: the request need not wait for the disk.
        stored = asyncio.ensure_future(self.store.append_messages([said]))
        try:
            async for event in self._answer(msg, user, lang, conv, (said, stored)):
                yield event
        finally:
            await stored  # durable before the turn ends, whatever became of the answer

    async def _retry(self, msg: Incoming, user: UserRecord, lang: str) -> AsyncIterator[ReplyEvent]:
        conv = await self._active_conversation(self._scope(msg, user))
        last = await self.store.get_messages(conv.id, last=1)
        if not last:
            yield self._notice(lang, "chat.retry_nothing")
            return
        if last[0].role == "assistant":
            await self.store.truncate_messages(conv.id, last[0].seq)
        async for event in self._answer(msg, user, lang, conv):
            yield event

    def _system_prompt(self, user: UserRecord, lang: str, is_group: bool) -> str:
        today = dt.datetime.fromtimestamp(self.clock(), dt.UTC).strftime("%A %d %B %Y")
        parts = [
            self.settings.system_prompt
            or "You are Ferry, a helpful assistant people talk to in a messenger. "
            "Answer in the language the person writes in. Use Markdown sparingly.",
            f"Today is {today} (UTC).",
        ]
        if is_group:
            parts.append("This is a group chat; each user message starts with the sender's name.")
        if user.instructions:
            parts.append(f"The person's own instructions:\n{user.instructions}")
        return "\n\n".join(parts)

    async def _answer(
        self,
        msg: Incoming,
        user: UserRecord,
        lang: str,
        conv: ConversationRecord,
        said: tuple[MessageRecord, asyncio.Future[list[MessageRecord]]] | None = None,
    ) -> AsyncIterator[ReplyEvent]:
        model_name = user.model if user.model in self.settings.model_choices else self.settings.model
        info = self.catalogue.get(model_name)
        reply_budget = min(self.settings.reply_tokens, info.max_output_tokens)
        history = await self.store.get_messages(conv.id, last=HISTORY_LIMIT)
        if said is not None:  # the person's message, maybe not stored yet
            history = [*(m for m in history if m.id != said[0].id), said[0]][-HISTORY_LIMIT:]
        turns = turns_from_history((m.role, m.content) for m in history if m.content)
        if not turns:
            yield self._notice(lang, "chat.retry_nothing")
            return
        try:
            messages = fit_context(
                self._system_prompt(user, lang, msg.chat.is_group), turns, info, reply_budget
            )
        except ContextTooLarge:
            yield self._notice(lang, "error.too_large")
            return

        if said is not None:
            # Give the write its first step; one refused at once (a full disk) is not answered.
            await asyncio.wait([said[1]], timeout=0)
            if said[1].done():
                said[1].result()  # raises its StoreError
        yield StreamStart()
        key = str(msg.chat)
        cancel = asyncio.Event()
        self._cancels[key] = cancel
        text = ""
        usage: Usage | None = None
        stop: Stop | None = None
        failure: ModelError | None = None
        cancelled = False
        started = time.monotonic()
        try:
            async for item in self._stream(model_name, messages, reply_budget, cancel):
                if isinstance(item, Delta):
                    if item.text:
                        if not text:
                            self.metrics.model_latency.labels(model_name).observe(time.monotonic() - started)
                        text += item.text
                        yield TextDelta(text)
                elif isinstance(item, Stop):
                    stop = item
                else:
                    usage = item
        except ModelError as e:
            failure = e
            text = text or e.partial_text
            self.metrics.errors.labels(f"model_{e.kind}").inc()
        except _Cancelled:
            cancelled = True
        finally:
            if self._cancels.get(key) is cancel:
                del self._cancels[key]

        if failure is not None and not text:
            log.warning("model %s failed for conversation %s: %s", model_name, conv.id, failure)
            yield self._model_error(lang, failure, model_name)
            return
        if cancelled and not text:
            yield self._notice(lang, "chat.cancelled")
            return
        status: MessageStatus = "cancelled" if cancelled else "interrupted" if failure is not None else "ok"
        prompt_tokens, completion_tokens = self._tokens(model_name, messages, text, usage)
        cost = info.cost(prompt_tokens, completion_tokens)
        now = self.clock()
        answer = MessageRecord(
            id=uuid.uuid4().hex,
            conversation_id=conv.id,
            role="assistant",
            content=text,
            created_at=now,
            status=status,
            model=model_name,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost=cost,
        )
        usage_record = UsageRecord(user.id, conv.id, model_name, prompt_tokens, completion_tokens, cost, now)
        if said is not None:
            await said[1]  # the person's message gets its place before the answer's
        # Both durable before the final text; written together, so the store commits them as one.
        await asyncio.gather(self.store.append_messages([answer]), self.store.add_usage(usage_record))
        self.metrics.model_duration.labels(model_name).observe(time.monotonic() - started)
        self.metrics.tokens.labels(model_name, "prompt").inc(prompt_tokens)
        self.metrics.tokens.labels(model_name, "completion").inc(completion_tokens)
        self.metrics.cost.labels(model_name).inc(cost)
        if status == "ok" and stop is not None:
            # Complete as far as the model went; the person should know it stopped short.
            marker = self.texts.get(lang, f"chat.stopped_{stop.reason}")
            yield FinalText(f"{text}\n\n_{marker}_", interrupted=True, streamed=True)
        elif status == "ok":
            yield FinalText(text, streamed=True)
        else:
            if failure is not None:
                log.warning("model %s broke off for conversation %s: %s", model_name, conv.id, failure)
                reason = self.texts.get(lang, "error.interrupted")
                marker = self.texts.get(lang, "chat.cut_off_error", reason=reason)
            else:
                marker = self.texts.get(lang, "chat.cut_off")
            yield FinalText(f"{text}\n\n_{marker}_", interrupted=True, streamed=True)
        turn = Turn(msg, user, lang, self.access.is_admin(user, (str(msg.sender), *msg.aliases)))
        for hook in self._answer_hooks:
            async for event in hook(turn, usage_record):
                yield event

    def _tokens(
        self, model: str, messages: list[dict[str, str]], text: str, usage: Usage | None
    ) -> tuple[int, int]:
        if usage is not None:
            return usage.prompt_tokens, usage.completion_tokens
        prompt = count_message_tokens(model, messages)
        completion = count_tokens(model, text)
        return prompt, completion

    def _model_error(self, lang: str, error: ModelError, model: str) -> Notice:
        kind = error.kind if error.kind in (
            "quota", "rate_limited", "provider_down", "too_large", "unknown_model", "auth"
        ) else "bad_response"
        return self._notice(lang, f"error.{kind}", model=model)

    async def _stream(
        self, model: str, messages: list[dict[str, str]], max_tokens: int, cancel: asyncio.Event
    ) -> AsyncIterator[Delta | Usage | Stop]:
        """The model's events, consumed in one task of their own so /cancel can stop them at once."""
        queue: asyncio.Queue[Any] = asyncio.Queue()

        async def pump() -> None:
            try:
                async for item in self.model.stream(model, messages, max_tokens):
                    queue.put_nowait(item)
                queue.put_nowait(_END)
            except ModelError as e:
                queue.put_nowait(e)
            except Exception as e:
                log.exception("model client failed unexpectedly")
                queue.put_nowait(ModelError("bad_response", str(e), ""))

        task = asyncio.create_task(pump())
        cancelled = asyncio.create_task(cancel.wait())
        try:
            while True:
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait({getter, cancelled}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    raise _Cancelled
                item = getter.result()
                if item is _END:
                    return
                if isinstance(item, ModelError):
                    raise item
                yield item
        finally:
            cancelled.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


class _Cancelled(Exception):
    """The person sent /cancel while the answer was being generated."""
