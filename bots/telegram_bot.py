"""Ferry's Telegram bot: a thin adapter between python-telegram-bot and the core.

It turns each update into one :class:`~core.types.Incoming`, feeds it to
``Assistant.handle`` and renders the reply events Telegram's way:

* private chats stream through ``sendMessageDraft`` and finish with one ``sendMessage``;
* groups get a placeholder that is edited at most about once a second;
* flood control (``retry_after``) pauses the chat's previews and delays, never drops or
  repeats, the final text; a refused HTML part is sent again as plain text;
* long answers are split by :mod:`bots.telegram_render` without breaking code blocks.

Updates are processed concurrently: the core orders messages per conversation itself, and
``/cancel`` must be able to overtake an answer that is still being written.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
import secrets
import time
import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from telegram import (
    BotCommand,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    MessageEntity,
    ReactionTypeEmoji,
    ReplyParameters,
    Update,
    User,
)
from telegram.constants import ChatAction, ChatType, FileSizeLimit, ParseMode
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bots.telegram_http import AiohttpRequest
from bots.telegram_render import render_parts, split_plain, visible_text
from core.types import (
    AdminAlert,
    Attachment,
    Button,
    ChatKey,
    FileReply,
    FinalText,
    Identity,
    Incoming,
    Notice,
    Progress,
    Reaction,
    ReplyEvent,
    StreamStart,
    TextDelta,
)

log = logging.getLogger(__name__)

PLATFORM = "telegram"
MENU_LANGUAGES = ("en", "id")  # "en" is registered as the default menu
ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]
Keyboard = tuple[tuple[Button, ...], ...]


class AssistantLike(Protocol):
    """What the adapter needs from :class:`core.assistant.Assistant`."""

    def handle(self, msg: Incoming) -> AsyncIterator[ReplyEvent]: ...

    def command_menu(self, lang: str) -> list[tuple[str, str]]: ...

    def text(self, lang: str, key: str, **values: Any) -> str: ...

    def language(self, language_code: str | None) -> str: ...


@dataclass(frozen=True)
class Pacing:
    """How often the bot may touch a chat while an answer streams (seconds)."""

    draft_interval: float = 0.5  # sendMessageDraft in private chats
    edit_interval: float = 1.0  # editMessageText of a group placeholder
    typing_interval: float = 4.0  # a chat action shows for about 5 s
    max_send_attempts: int = 6  # for final texts under flood control
    placeholder: str = "…"


@dataclass(frozen=True)
class Target:
    """Where replies to one incoming message go."""

    chat_id: int
    thread_id: int | None = None
    reply_to: int | None = None  # quote the person's message (groups only)
    is_private: bool = True
    lang: str | None = None
    message_id: int | None = None  # the person's message, for reactions


@dataclass
class _Gate:
    """Per-chat flood-control gate: nothing is sent to the chat before ``until``."""

    until: dict[int, float] = field(default_factory=dict)
    on_flood: Callable[[float], None] | None = None  # counts flood-control waits (metrics)

    def wait_time(self, chat_id: int) -> float:
        return max(0.0, self.until.get(chat_id, 0.0) - time.monotonic())

    def close_for(self, chat_id: int, seconds: float) -> None:
        if self.on_flood is not None:
            self.on_flood(seconds)
        self.until[chat_id] = max(self.until.get(chat_id, 0.0), time.monotonic() + seconds)
        if len(self.until) > 10_000:  # forget gates that opened long ago
            now = time.monotonic()
            self.until = {k: v for k, v in self.until.items() if v > now}


def _flood_counter(metrics: Any) -> Callable[[float], None]:
    def count(seconds: float) -> None:
        metrics.flood_waits.labels(PLATFORM).inc()
        metrics.flood_wait_seconds.labels(PLATFORM).inc(seconds)

    return count


def _retry_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB warns that ints become timedeltas; both are handled
        warnings.simplefilter("ignore")
        value: Any = exc.retry_after
    return float(value.total_seconds()) if hasattr(value, "total_seconds") else float(value)


def _is(exc: BadRequest, words: str) -> bool:
    return words in exc.message.lower()


def keyboard(buttons: Keyboard) -> InlineKeyboardMarkup | None:
    """The inline keyboard for the core's button rows (``None`` for no buttons)."""
    if not buttons:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(b.label, callback_data=b.data) for b in row] for row in buttons])


# --- updates → Incoming ------------------------------------------------------------------------


def _command_entity(message: Message) -> MessageEntity | None:
    for entity in message.entities:
        if entity.type == MessageEntity.BOT_COMMAND and entity.offset == 0:
            return entity
    return None


def _addressing(message: Message, bot_user: User) -> tuple[str, bool]:
    """The text with the bot's own handle removed, and whether the bot was addressed."""
    text = message.text or message.caption or ""
    username = (bot_user.username or "").lower()
    handle = f"@{username}" if username else None
    addressed = False

    command = _command_entity(message) if message.text else None
    if command is not None:
        word = text[: command.length]  # a command is ASCII, so UTF-16 and str offsets agree
        name, _, at = word.partition("@")
        if at and at.lower() != username:
            return text, False  # a command for another bot in the same group
        addressed = True
        text = name + text[len(word) :]

    entities = message.parse_entities() if message.text else message.parse_caption_entities()
    for entity, value in entities.items():
        by_name = entity.type == MessageEntity.MENTION and handle is not None and value.lower() == handle
        by_user = entity.type == MessageEntity.TEXT_MENTION and entity.user is not None
        if by_name or (by_user and entity.user is not None and entity.user.id == bot_user.id):
            addressed = True
    if handle and handle in text.lower():
        addressed = True
        lower = text.lower()
        while handle in lower:
            i = lower.index(handle)
            text = text[:i] + text[i + len(handle) :]
            lower = text.lower()
        text = re.sub(r"[ \t]{2,}", " ", text)

    reply = message.reply_to_message
    if (
        reply is not None
        and reply.from_user is not None
        and reply.from_user.id == bot_user.id
        and reply.forum_topic_created is None
    ):
        addressed = True
    return text.strip(), addressed


def _media_attachment(message: Message) -> Attachment | None:
    """An attachment the core does not read yet (it answers with a friendly notice)."""
    if message.voice:
        return Attachment("voice", None, message.voice.mime_type, message.voice.file_size)
    if message.photo:
        return Attachment("photo", None, "image/jpeg", message.photo[-1].file_size)
    if message.sticker:
        return Attachment("sticker", None, None, message.sticker.file_size)
    if message.video or message.video_note or message.animation:
        return Attachment("video")
    if message.audio:
        return Attachment("audio", message.audio.file_name, message.audio.mime_type, message.audio.file_size)
    if message.location or message.contact or message.poll or message.venue or message.dice:
        return Attachment("other")
    return None


async def _document(message: Message) -> Attachment | None:
    doc = message.document
    if doc is None:
        return None
    data: bytes | None = None
    if doc.file_size is None or doc.file_size <= FileSizeLimit.FILESIZE_DOWNLOAD:
        try:
            tg_file = await doc.get_file()
            data = bytes(await tg_file.download_as_bytearray())
        except TelegramError as exc:
            log.warning("could not download document %s: %s", doc.file_name, exc)
    return Attachment("document", doc.file_name, doc.mime_type, doc.file_size, data)


def chat_key(message: Message, user: User) -> ChatKey:
    """The conversation key: the user in private chats, the group (and topic) in groups."""
    chat = message.chat
    if chat.type == ChatType.PRIVATE:
        return ChatKey(PLATFORM, str(user.id))
    topic = str(message.message_thread_id) if message.is_topic_message and message.message_thread_id else None
    return ChatKey(PLATFORM, str(chat.id), topic=topic, is_group=True)


def target_for(message: Message, lang: str | None) -> Target:
    """Replies go to the same chat and topic; in groups they quote the person's message."""
    private = message.chat.type == ChatType.PRIVATE
    thread = message.message_thread_id if message.is_topic_message else None
    return Target(
        chat_id=message.chat.id,
        thread_id=thread,
        reply_to=None if private else message.message_id,
        is_private=private,
        lang=lang,
        message_id=message.message_id,
    )


async def incoming_from_message(message: Message, bot_user: User) -> Incoming | None:
    """The core's view of a Telegram message (``None`` for messages no person sent)."""
    user = message.from_user
    if user is None or user.is_bot or message.chat.type == ChatType.CHANNEL:
        return None
    text, addressed = _addressing(message, bot_user)
    is_group = message.chat.type != ChatType.PRIVATE
    attachment = _media_attachment(message)
    if attachment is None and message.document is not None and (addressed or not is_group):
        attachment = await _document(message)
    quoted = None
    reply = message.reply_to_message
    if reply is not None and reply.from_user is not None and reply.from_user.id == bot_user.id:
        quoted = reply.text or reply.caption
    return Incoming(
        sender=Identity(PLATFORM, str(user.id)),
        chat=chat_key(message, user),
        text=text,
        sender_name=user.full_name,
        language_code=user.language_code,
        attachments=(attachment,) if attachment else (),
        addressed=addressed or not is_group,
        quoted_text=quoted,
        message_id=str(message.message_id),
        raw=message,
    )


def incoming_from_callback(query: CallbackQuery) -> tuple[Incoming, Target]:
    """A button press, as the core's ``Incoming(callback=data)`` and where to answer it."""
    user = query.from_user
    message = query.message
    if message is not None and message.chat.type != ChatType.PRIVATE:
        thread = message.message_thread_id if isinstance(message, Message) else None
        key = ChatKey(PLATFORM, str(message.chat.id), topic=str(thread) if thread else None, is_group=True)
        target = Target(chat_id=message.chat.id, thread_id=thread, is_private=False)
    else:
        key = ChatKey(PLATFORM, str(user.id))
        target = Target(chat_id=message.chat.id if message else user.id)
    incoming = Incoming(
        sender=Identity(PLATFORM, str(user.id)),
        chat=key,
        text="",
        sender_name=user.full_name,
        language_code=user.language_code,
        callback=query.data or "",
        raw=query,
    )
    return incoming, target


# --- sending -------------------------------------------------------------------------------------


class Sender:
    """Sends and edits messages in one chat, honouring flood control and falling back to plain text."""

    def __init__(self, app: Application[Any, Any, Any, Any, Any, Any], gate: _Gate, pacing: Pacing) -> None:
        self.bot = app.bot
        self.gate = gate
        self.pacing = pacing

    async def _wait_gate(self, chat_id: int) -> None:
        delay = self.gate.wait_time(chat_id)
        if delay > 0:
            await asyncio.sleep(delay)

    async def _attempt(self, chat_id: int, call: Any, *, idempotent: bool) -> Any:
        """Run ``call()`` until it gets through flood control; network retries only if idempotent."""
        for attempt in range(self.pacing.max_send_attempts):
            await self._wait_gate(chat_id)
            try:
                return await call()
            except RetryAfter as exc:
                self.gate.close_for(chat_id, _retry_seconds(exc))
                log.info("flood control in chat %s: waiting %.0f s", chat_id, _retry_seconds(exc))
            except TimedOut:
                if not idempotent:
                    raise  # the message may have arrived; sending again could duplicate it
                await asyncio.sleep(min(2**attempt, 10))
            except BadRequest:
                raise
            except NetworkError as exc:
                # Only a connection that was never made proves a new message did not arrive.
                if not idempotent and "ConnectError" not in str(exc):
                    raise
                await asyncio.sleep(min(2**attempt, 10))
        raise TimedOut(f"gave up after {self.pacing.max_send_attempts} attempts")

    async def put(
        self,
        target: Target,
        html_part: str,
        *,
        edit: int | None = None,
        markup: InlineKeyboardMarkup | None = None,
        quote: bool = False,
    ) -> list[int]:
        """Show one rendered part (edit ``edit`` or send a new message); returns the message ids used.

        A refused HTML part is sent as plain text; a part Telegram finds too long is split further.
        """
        try:
            return [await self._put_one(target, html_part, ParseMode.HTML, edit, markup, quote)]
        except BadRequest as exc:
            if _is(exc, "not modified") and edit is not None:
                return [edit]
            if edit is not None and _is(exc, "message to edit not found"):
                # Someone deleted the placeholder: the answer still arrives, as a new message.
                return await self.put(target, html_part, markup=markup, quote=quote)
            if not (_is(exc, "can't parse entities") or _is(exc, "too long")):
                raise
            log.warning("Telegram refused a formatted message (%s); sending plain text", exc.message)
        plain = visible_text(html_part)
        pieces = split_plain(plain, 4000) or [plain]
        ids: list[int] = []
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            try:
                ids.append(
                    await self._put_one(
                        target, piece, None, edit if i == 0 else None, markup if last else None, quote and i == 0
                    )
                )
            except BadRequest as exc:
                if not (_is(exc, "not modified") and i == 0 and edit is not None):
                    raise
                ids.append(edit)
        return ids

    async def _put_one(
        self,
        target: Target,
        text: str,
        parse_mode: str | None,
        edit: int | None,
        markup: InlineKeyboardMarkup | None,
        quote: bool,
    ) -> int:
        if edit is not None:

            async def do_edit() -> Any:
                return await self.bot.edit_message_text(
                    text, chat_id=target.chat_id, message_id=edit, parse_mode=parse_mode, reply_markup=markup
                )

            await self._attempt(target.chat_id, do_edit, idempotent=True)
            return edit

        reply = (
            ReplyParameters(target.reply_to, allow_sending_without_reply=True) if quote and target.reply_to else None
        )

        async def do_send() -> Any:
            return await self.bot.send_message(
                target.chat_id,
                text,
                parse_mode=parse_mode,
                reply_markup=markup,
                message_thread_id=target.thread_id,
                reply_parameters=reply,
            )

        sent = await self._attempt(target.chat_id, do_send, idempotent=False)
        return int(sent.message_id)

    async def deliver(
        self, target: Target, markdown: str, buttons: Keyboard = (), slots: Sequence[int] = ()
    ) -> list[int]:
        """Deliver a complete Markdown text once: edit ``slots`` first, then send new messages."""
        parts = render_parts(markdown) or [self.pacing.placeholder]
        markup = keyboard(buttons)
        used: list[int] = []
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            edit = slots[i] if i < len(slots) else None
            used += await self.put(target, part, edit=edit, markup=markup if last else None, quote=not used)
        for extra in slots[len(parts) :]:
            with contextlib.suppress(TelegramError):
                await self.bot.delete_message(target.chat_id, extra)
        return used

    async def preview(self, target: Target, draft_id: int, html_part: str) -> None:
        """Show a draft in a private chat (plain text if the partial HTML is refused)."""
        try:
            await self.bot.send_message_draft(
                target.chat_id, draft_id, html_part, message_thread_id=target.thread_id, parse_mode=ParseMode.HTML
            )
        except BadRequest as exc:
            if not _is(exc, "can't parse entities"):
                raise
            plain = visible_text(html_part)
            await self.bot.send_message_draft(
                target.chat_id, draft_id, plain[:4000], message_thread_id=target.thread_id
            )


class LiveAnswer:
    """One streamed answer: drafts (private) or an edited placeholder (groups), then the final text.

    Previews are best effort and paced; the final text is delivered exactly once.
    """

    _draft_ids = itertools.count(1)

    def __init__(self, sender: Sender, target: Target, pacing: Pacing) -> None:
        self.sender = sender
        self.target = target
        self.pacing = pacing
        self.interval = pacing.draft_interval if target.is_private else pacing.edit_interval
        self.draft_id = next(self._draft_ids)
        self.slots: list[int] = []  # group messages showing the answer so far
        self._shown: list[str] = []
        self._latest = ""
        self._wake = asyncio.Event()
        self._closed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Show that an answer is coming (a placeholder in groups) and start the preview pump."""
        if not self.target.is_private and not self.sender.gate.wait_time(self.target.chat_id):
            reply = (
                ReplyParameters(self.target.reply_to, allow_sending_without_reply=True)
                if self.target.reply_to
                else None
            )
            try:
                sent = await self.sender.bot.send_message(
                    self.target.chat_id,
                    self.pacing.placeholder,
                    message_thread_id=self.target.thread_id,
                    reply_parameters=reply,
                )
                self.slots = [sent.message_id]
                self._shown = [self.pacing.placeholder]
            except RetryAfter as exc:
                self.sender.gate.close_for(self.target.chat_id, _retry_seconds(exc))
            except TelegramError as exc:
                log.warning("could not send a placeholder to %s: %s", self.target.chat_id, exc)
        self._task = asyncio.create_task(self._pump())

    def update(self, text: str) -> None:
        self._latest = text
        self._wake.set()

    async def _sleep_unless_closed(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), seconds)

    async def _pump(self) -> None:
        next_at = 0.0
        while not self._closed.is_set():
            await self._wake.wait()
            self._wake.clear()
            gate = self.sender.gate.wait_time(self.target.chat_id)
            await self._sleep_unless_closed(max(gate, next_at - time.monotonic()))
            if self._closed.is_set():
                return
            text = self._latest
            try:
                await self._show(text)
            except RetryAfter as exc:
                # Skip previews until the gate opens; the newest text is shown after that.
                self.sender.gate.close_for(self.target.chat_id, _retry_seconds(exc))
                self._wake.set()
            except TelegramError as exc:
                log.info("preview in chat %s failed: %s", self.target.chat_id, exc)
            except Exception:
                log.exception("preview in chat %s failed", self.target.chat_id)
            next_at = time.monotonic() + self.interval

    async def _show(self, markdown: str) -> None:
        parts = render_parts(markdown)
        if not parts:
            return
        if self.target.is_private:
            await self.sender.preview(self.target, self.draft_id, parts[-1])
            return
        for i, part in enumerate(parts):
            if i < len(self._shown) and self._shown[i] == part:
                continue
            if i < len(self.slots):
                await self.sender.bot.edit_message_text(
                    part, chat_id=self.target.chat_id, message_id=self.slots[i], parse_mode=ParseMode.HTML
                )
                self._shown[i] = part
            else:
                sent = await self.sender.bot.send_message(
                    self.target.chat_id, part, parse_mode=ParseMode.HTML, message_thread_id=self.target.thread_id
                )
                self.slots.append(sent.message_id)
                self._shown.append(part)

    async def close(self) -> None:
        """Stop previews and wait for one in flight, so it cannot land after the final text."""
        self._closed.set()
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def finish(self, markdown: str, buttons: Keyboard = ()) -> None:
        """Deliver the final text: new messages in private chats, the placeholder's edit in groups."""
        await self.close()
        await self.sender.deliver(self.target, markdown, buttons, slots=self.slots)
        self.slots = []


class Turn:
    """Renders the reply events for one incoming message."""

    def __init__(self, bot: TelegramBot, app: Application[Any, Any, Any, Any, Any, Any], target: Target) -> None:
        self.bot = bot
        self.app = app
        self.target = target
        self.sender = Sender(app, bot.gate, bot.pacing)
        self.live: LiveAnswer | None = None
        self.typing: asyncio.Task[None] | None = None
        self._typing_stop = asyncio.Event()
        self.progress_id: int | None = None
        self.progress_at = 0.0

    async def _typing_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if not self.bot.gate.wait_time(self.target.chat_id):
                try:
                    await self.app.bot.send_chat_action(
                        self.target.chat_id, ChatAction.TYPING, message_thread_id=self.target.thread_id
                    )
                except RetryAfter as exc:
                    self.bot.gate.close_for(self.target.chat_id, _retry_seconds(exc))
                except TelegramError as exc:
                    log.debug("typing action failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.bot.pacing.typing_interval)

    def start_typing(self) -> None:
        if self.typing is None:
            self._typing_stop = asyncio.Event()
            self.typing = asyncio.create_task(self._typing_loop(self._typing_stop))

    async def stop_typing(self) -> None:
        """Stop typing; an action in flight is let through so it cannot land after the answer."""
        if self.typing is not None:
            self._typing_stop.set()
            try:
                await self.typing
            except Exception:
                log.exception("typing loop failed")
            self.typing = None

    async def render(self, event: ReplyEvent) -> None:
        """Show one reply event."""
        if isinstance(event, StreamStart):
            self.start_typing()
            if self.live is None:
                self.live = LiveAnswer(self.sender, self.target, self.bot.pacing)
                await self.live.start()
        elif isinstance(event, TextDelta):
            if self.live is None:
                self.live = LiveAnswer(self.sender, self.target, self.bot.pacing)
                await self.live.start()
            self.live.update(event.text)
        elif isinstance(event, FinalText | Notice):
            # Stop typing and previews before anything awaits: a fast answer needs neither.
            self._typing_stop.set()
            if self.live is not None:
                live, self.live = self.live, None
                await live.finish(event.text, event.buttons)
            else:
                await self.sender.deliver(self.target, event.text, event.buttons)
            await self.stop_typing()
        elif isinstance(event, FileReply):
            await self.app.bot.send_document(
                self.target.chat_id,
                InputFile(event.data, filename=event.filename),
                caption=event.caption,
                message_thread_id=self.target.thread_id,
            )
        elif isinstance(event, Progress):
            await self._progress(event)
        elif isinstance(event, Reaction):
            if self.target.message_id is not None:
                try:
                    await self.app.bot.set_message_reaction(
                        self.target.chat_id, self.target.message_id, ReactionTypeEmoji(event.emoji)
                    )
                except TelegramError as exc:  # a reaction is decoration; the answer goes on
                    log.info("could not react in chat %s: %s", self.target.chat_id, exc)
        elif isinstance(event, AdminAlert):
            await self.bot.send_alert(self.app, event)

    async def _progress(self, event: Progress) -> None:
        now = time.monotonic()
        done = event.done >= event.total
        if self.progress_id is not None and not done and now - self.progress_at < self.bot.pacing.edit_interval:
            return
        self.progress_at = now
        slots = [self.progress_id] if self.progress_id is not None else []
        ids = await self.sender.deliver(self.target, event.text, slots=slots)
        self.progress_id = ids[0] if ids else None

    async def fail(self) -> None:
        """After an adapter error: one sentence for the person, replacing any placeholder."""
        await self.stop_typing()
        lang = self.target.lang or "en"
        text = self.bot.assistant.text(lang, "error.internal")
        live, self.live = self.live, None
        try:
            if live is not None:
                await live.finish(text)
            else:
                await self.sender.deliver(self.target, text)
        except Exception:
            log.exception("could not tell chat %s about an error", self.target.chat_id)

    async def close(self) -> None:
        """The core is done: finish a stream it left open (shouldn't happen) and stop typing."""
        await self.stop_typing()
        if self.live is not None:
            live, self.live = self.live, None
            if live._latest:
                await live.finish(live._latest)
            else:
                await live.close()
                for message_id in live.slots:
                    with contextlib.suppress(TelegramError):
                        await self.app.bot.delete_message(self.target.chat_id, message_id)


class _Intake:
    """FIFO locks per chat, held only while a message needs awaiting before it reaches the core."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def busy(self, key: str) -> bool:
        return key in self._locks

    @contextlib.asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class TelegramBot:
    """The handlers that connect one :class:`Application` to the assistant."""

    def __init__(self, assistant: AssistantLike, pacing: Pacing | None = None) -> None:
        self.assistant = assistant
        self.pacing = pacing or Pacing()
        metrics = getattr(assistant, "metrics", None)
        self.gate = _Gate(on_flood=_flood_counter(metrics) if metrics is not None else None)
        self.intake = _Intake()
        self._relay: asyncio.Task[None] | None = None

    async def send_alert(self, app: Application[Any, Any, Any, Any, Any, Any], alert: AdminAlert) -> None:
        """Send an alert to each of its ``telegram:<id>`` recipients (others are not ours)."""
        sender = Sender(app, self.gate, self.pacing)
        for identity in alert.to:
            platform, _, ident = identity.partition(":")
            if platform != PLATFORM or not ident.lstrip("-").isdigit():
                continue
            try:
                await sender.deliver(Target(chat_id=int(ident)), alert.text, alert.buttons)
            except TelegramError as exc:
                log.warning("could not alert %s: %s", identity, exc)

    def start_relay(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        """Deliver alerts the other messenger's process left for people on Telegram."""
        alerts = getattr(self.assistant, "alerts", None)
        if alerts is not None and self._relay is None:
            self._relay = asyncio.create_task(self._relay_alerts(app, alerts(PLATFORM)))

    async def stop_relay(self) -> None:
        if self._relay is not None:
            self._relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay
            self._relay = None

    async def _relay_alerts(
        self, app: Application[Any, Any, Any, Any, Any, Any], alerts: AsyncIterator[AdminAlert]
    ) -> None:
        async for alert in alerts:
            try:
                await self.send_alert(app, alert)
            except Exception:
                log.exception("could not deliver an alert from the other messenger")

    def install(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        """Register the handlers (every message and button press goes to the core)."""
        # Service messages (members joining, pins, topic edits) carry nothing to answer.
        app.add_handler(MessageHandler(~filters.StatusUpdate.ALL, self.on_message, block=False))
        app.add_handler(CallbackQueryHandler(self.on_callback, block=False))
        app.add_error_handler(self.on_error)

    async def set_commands(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        """Register the command menu in English (default) and Indonesian."""
        for lang in MENU_LANGUAGES:
            commands = [BotCommand(name, desc[:256]) for name, desc in self.assistant.command_menu(lang)]
            try:
                await app.bot.set_my_commands(commands, language_code=None if lang == "en" else lang)
            except TelegramError as exc:
                log.warning("could not set the %s command menu: %s", lang, exc)

    async def on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or message.from_user is None:
            return
        target = target_for(message, message.from_user.language_code)
        key = str(chat_key(message, message.from_user))
        if message.document is None and not self.intake.busy(key):
            # Nothing to await before the core takes the message: arrival order is kept as is.
            incoming = await self._read(update, message, context)
            if incoming is not None:
                await self.serve(context.application, incoming, target)
            return
        # A download comes first: hold later messages of this chat until this one is in the core's queue.
        async with self.intake.turn(key):
            incoming = await self._read(update, message, context)
            if incoming is None:
                return
            task = asyncio.create_task(self.serve(context.application, incoming, target))
            await asyncio.sleep(0)  # serve() reaches the core's per-chat queue before anything else
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            task.cancel()
            raise

    async def _read(self, update: Update, message: Message, context: ContextTypes.DEFAULT_TYPE) -> Incoming | None:
        try:
            return await incoming_from_message(message, context.bot.bot)
        except Exception:
            log.exception("could not read update %s", update.update_id)
            return None

    async def on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        try:
            await query.answer()
        except TelegramError as exc:
            log.info("could not answer callback query: %s", exc)
        incoming, target = incoming_from_callback(query)
        await self.serve(context.application, incoming, target)

    async def serve(self, app: Application[Any, Any, Any, Any, Any, Any], incoming: Incoming, target: Target) -> None:
        """Run one message through the core and render its replies; never raises."""
        target = Target(
            target.chat_id,
            target.thread_id,
            target.reply_to,
            target.is_private,
            self.assistant.language(incoming.language_code),
            target.message_id,
        )
        turn = Turn(self, app, target)
        events = self.assistant.handle(incoming)
        try:
            async for event in events:
                await turn.render(event)
            await turn.close()
        except asyncio.CancelledError:
            if turn.typing is not None:
                turn.typing.cancel()
            raise
        except Exception:
            log.exception("failed to answer in chat %s", target.chat_id)
            await turn.fail()
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("error while handling an update", exc_info=context.error)


# --- building and running ------------------------------------------------------------------------


def build_application(
    assistant: AssistantLike,
    token: str,
    api_url: str = "https://api.telegram.org",
    *,
    pacing: Pacing | None = None,
    concurrency: int = 4096,
    pool_size: int = 16,
    manage_assistant: bool = False,
) -> Application[Any, Any, Any, Any, Any, Any]:
    """A PTB Application wired to ``assistant``; ``api_url`` is the Bot API server root.

    With ``manage_assistant`` the application starts the assistant (``await assistant.start()``)
    before polling and closes it after shutdown, as ``run_polling``/``run_webhook`` need.
    """
    root = api_url.rstrip("/")
    bot = TelegramBot(assistant, pacing)

    async def post_init(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        if manage_assistant:
            await _call(assistant, "start")
        await bot.set_commands(app)
        bot.start_relay(app)

    async def post_shutdown(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        await bot.stop_relay()
        if manage_assistant:
            await _call(assistant, "close")

    app = (
        ApplicationBuilder()
        .token(token)
        .base_url(f"{root}/bot")
        .base_file_url(f"{root}/file/bot")
        .concurrent_updates(concurrency)
        .request(AiohttpRequest(pool_size))
        .post_init(post_init)
        .post_shutdown(post_shutdown)
        .build()
    )
    bot.install(app)
    app.bot_data["ferry"] = bot
    return app


@contextlib.asynccontextmanager
async def polling(
    app: Application[Any, Any, Any, Any, Any, Any], poll_timeout: float = 10.0
) -> AsyncIterator[Application[Any, Any, Any, Any, Any, Any]]:
    """Run ``app`` with long polling inside the current event loop (tests, benchmarks)."""
    async with app:
        bot: TelegramBot = app.bot_data["ferry"]
        await bot.set_commands(app)
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(timeout=int(poll_timeout), allowed_updates=ALLOWED_UPDATES)
        bot.start_relay(app)
        try:
            yield app
        finally:
            await bot.stop_relay()
            await app.updater.stop()
            await app.stop()


def webhook_params(url: str, port: int, secret: str | None, listen: str = "0.0.0.0") -> dict[str, Any]:
    """Arguments for PTB's webhook server: listen on ``port`` at ``url``'s path.

    Without a configured secret a random one is made, so that only Telegram (which is told the
    secret by ``setWebhook``) can post updates; PTB answers 403 to anyone else.
    """
    return {
        "listen": listen,
        "port": port,
        "url_path": urlsplit(url).path.strip("/"),
        "webhook_url": url,
        "secret_token": secret or secrets.token_urlsafe(32),
    }


@contextlib.asynccontextmanager
async def webhook(
    app: Application[Any, Any, Any, Any, Any, Any], url: str, port: int, secret: str | None, listen: str = "0.0.0.0"
) -> AsyncIterator[Application[Any, Any, Any, Any, Any, Any]]:
    """Run ``app`` with a webhook inside the current event loop (tests); ``run`` uses ``run_webhook``."""
    async with app:
        bot: TelegramBot = app.bot_data["ferry"]
        await bot.set_commands(app)
        await app.start()
        assert app.updater is not None
        await app.updater.start_webhook(**webhook_params(url, port, secret, listen), allowed_updates=ALLOWED_UPDATES)
        bot.start_relay(app)
        try:
            yield app
        finally:
            await bot.stop_relay()
            await app.updater.stop()
            await app.stop()


async def _call(obj: object, name: str) -> None:
    method = getattr(obj, name, None)
    if method is not None:
        await method()


def _serve_health_with(app: Application[Any, Any, Any, Any, Any, Any], settings: Any, assistant: Any) -> None:
    """Serve /healthz and /metrics for as long as PTB runs ``app`` (it owns the event loop)."""
    from bots.health import serve_health

    stack = contextlib.AsyncExitStack()
    started, stopped = app.post_init, app.post_shutdown

    def connected() -> bool:
        return bool(app.running and app.updater is not None and app.updater.running)

    async def post_init(a: Application[Any, Any, Any, Any, Any, Any]) -> None:
        if started is not None:
            await started(a)
        await stack.enter_async_context(serve_health(settings, assistant, "Telegram", connected))

    async def post_shutdown(a: Application[Any, Any, Any, Any, Any, Any]) -> None:
        await stack.aclose()
        if stopped is not None:
            await stopped(a)

    app.post_init = post_init
    app.post_shutdown = post_shutdown


def run(settings: Any) -> None:
    """Run the Telegram bot until interrupted: long polling, or a webhook when one is configured."""
    from core.app import build_assistant
    from core.settings import SettingsError

    os.environ.setdefault("PTB_TIMEDELTA", "1")  # opt in to PTB's future retry_after type
    if not settings.telegram_bot_token:
        raise SettingsError("TELEGRAM_BOT_TOKEN is not set; get one from @BotFather")
    assistant = build_assistant(settings)
    app = build_application(assistant, settings.telegram_bot_token, settings.telegram_api_url, manage_assistant=True)
    _serve_health_with(app, settings, assistant)
    if settings.telegram_webhook_url:
        params = webhook_params(
            settings.telegram_webhook_url, settings.telegram_webhook_port, settings.telegram_webhook_secret
        )
        log.info("Telegram webhook on port %s at /%s", params["port"], params["url_path"])
        app.run_webhook(**params, allowed_updates=ALLOWED_UPDATES)
    else:
        log.info("Telegram long polling via %s", settings.telegram_api_url)
        app.run_polling(allowed_updates=ALLOWED_UPDATES)
