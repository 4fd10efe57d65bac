"""The Signal bot process (``ferry signal``): a thin adapter between signalbot and the core.

It turns each Signal message into one :class:`~core.types.Incoming`, calls
``assistant.handle`` for it (concurrently; the core keeps each chat in order), and renders
the reply events the Signal way: one message that is edited while the answer streams (at
most about once a second), text styles instead of markup, a typing indicator, numbered
choices instead of buttons.

signal-cli-rest-api must run in json-rpc mode (signalbot receives over its WebSocket only).
Three traps of signalbot 2.2.1 are handled here, because a receive loop that dies silently
loses people's messages (pain point 10):

* a WebSocket that the server closes cleanly ends signalbot's producer for good, without a
  word; a closed or failed socket is reconnected here with backoff, and logged;
* one frame missing a field its models require makes signalbot drop the connection (and the
  messages in flight); such frames are logged and skipped here before signalbot sees them;
* a wrong mode or an unlinked number makes signalbot retry forever with a traceback; a
  pre-flight check says in one log line what to do, then retries with backoff.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
import signal as os_signal
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
from packaging.version import InvalidVersion, Version
from pydantic import ValidationError
from signalbot import (
    MIN_SIGNAL_CLI_REST_API_VERSION,
    Config,
    ConnectionMode,
    DataMessage,
    DataMessageContext,
    DataMessageHandler,
    EditMessage,
    InMemoryConfig,
    SendMessage,
    SentMessage,
    SignalAPIError,
    SignalBot,
    TextMode,
)
from signalbot import Attachment as SignalAttachment
from signalbot._generated import Message as ReceivedFrame
from signalbot.messages import ReceiveError

from bots.signal_render import render_signal, styled_markup
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
    PartialAnswer,
    Progress,
    Reaction,
    ReplyEvent,
    StreamStart,
)

if TYPE_CHECKING:
    from core.settings import Settings

log = logging.getLogger(__name__)

PLATFORM = "signal"
_MENTION = "\ufffc"  # how Signal marks a mention inside the text
_CHOICE = re.compile(r"^\s*(\d{1,3})\s*[.)]?\s*$")
TYPING_REFRESH = 10.0
"""Seconds between typing indicators while an answer runs (Signal apps drop one after ~15 s)."""


class AssistantLike(Protocol):
    """What the adapter needs of the core: one entry, an async stream of reply events."""

    def handle(self, msg: Incoming) -> AsyncIterator[ReplyEvent]: ...


@dataclass(frozen=True)
class Backoff:
    """Exponential retry delays: ``first``, doubling up to ``most`` seconds."""

    first: float = 1.0
    most: float = 60.0

    def delays(self) -> AsyncIterator[float]:
        return _delays(self.first, self.most)


async def _delays(first: float, most: float) -> AsyncIterator[float]:
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, most)


class SignalServiceProblem(Exception):
    """signal-cli-rest-api is unreachable or not set up for Ferry; the message says what to do."""


# --- sending with text styles ---------------------------------------------------------------


def styled(markdown: str, *, plain: bool = False) -> SendMessage:
    """A message for Signal from Markdown, with its text styles where they can travel.

    signal-cli-rest-api takes styles only as its "styled" markup, which it re-parses: every
    ``*``, ``~``, `` ` `` and ``|`` becomes markup, and styles cannot nest. So the rendered text
    goes as markup when it holds none of those characters, and as plain text (nothing lost,
    only unstyled) when it does. The mode is always explicit, so a server whose default is
    styled cannot eat a literal asterisk.
    """
    text, styles = render_signal(markdown)
    markup = None if plain or not styles else styled_markup(text, styles)
    if markup is None:
        return SendMessage(text=text, text_mode=TextMode.NORMAL)
    return SendMessage(text=markup, text_mode=TextMode.STYLED)


def numbered_choices(buttons: Sequence[Sequence[Button]]) -> list[Button]:
    """The buttons in reading order, as the person will number them."""
    return [button for row in buttons for button in row]


def with_choices(markdown: str, choices: Sequence[Button]) -> str:
    """The text with its choices as a numbered line under it ("1. Approve  2. Deny")."""
    if not choices:
        return markdown
    line = "  ".join(f"{i}. {button.label}" for i, button in enumerate(choices, 1))
    return f"{markdown}\n\n{_escape_list(line)}"


def _escape_list(line: str) -> str:
    # "1. x" at the start of a line would become a Markdown list (and be renumbered).
    return re.sub(r"^(\d+)\.", r"\1\\.", line)


def recipient_of(identity: str) -> str | None:
    """The Signal recipient (UUID or +number) of an identity string, or None if not Signal."""
    platform, _, ident = identity.partition(":")
    if platform != PLATFORM or not ident:
        return None
    return ident


# --- the adapter ----------------------------------------------------------------------------


class SignalAdapter:
    """Runs signalbot against one signal-cli-rest-api and feeds its messages to the core.

    ``service`` is ``host:port`` without a scheme, ``phone_number`` the bot's account.
    Use :meth:`start` (returns once messages are being received) and :meth:`stop`.
    """

    def __init__(
        self,
        assistant: AssistantLike,
        *,
        service: str,
        phone_number: str,
        connection_mode: ConnectionMode = ConnectionMode.HTTP_ONLY,
        bot_uuid: str | None = None,
        edit_interval: float = 1.0,
        startup_backoff: Backoff = Backoff(1.0, 60.0),
        reconnect_backoff: Backoff = Backoff(0.5, 30.0),
        typing_refresh: float = TYPING_REFRESH,
    ) -> None:
        self.assistant = assistant
        self.service = service
        self.phone_number = phone_number
        self.bot_uuid = bot_uuid
        self.connection_mode = connection_mode
        self.edit_interval = edit_interval
        self.startup_backoff = startup_backoff
        self.reconnect_backoff = reconnect_backoff
        self.typing_refresh = typing_refresh
        self.bot: SignalBot | None = None
        self.ready = asyncio.Event()
        self._relay: asyncio.Task[None] | None = None
        self._connecting_since = 0.0
        self._dropped_at = 0.0
        """Set once the service passed the checks and signalbot is receiving."""
        self._scheme = "https" if connection_mode == ConnectionMode.HTTPS_ONLY else "http"
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._choices: dict[str, list[Button]] = {}
        # Per chat: resolves when the previous message's call into the core has begun,
        # so the core sees each chat's messages in arrival order.
        self._intake: dict[str, asyncio.Future[None]] = {}

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{self._scheme}://{self.service}"

    async def start(self) -> None:
        """Check the service (retrying with backoff), start signalbot and wait until ready."""
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        await self._wait_for_service()
        config = Config(
            phone_number=self.phone_number,
            signal_service=self.service,
            connection_mode=self.connection_mode,
            storage=InMemoryConfig(),
            # Documents are fetched by the adapter; voice notes and photos need no bytes.
            download_attachments=False,
        )
        bot = SignalBot(config)  # inside the running loop: signalbot captures it
        bot.register(_Handler(self), contacts=True, groups=True)
        self._harden_receive(bot)
        self.bot = bot
        bot.start(run_forever=False)
        await bot.wait_until_ready()
        self.ready.set()
        log.info("Signal: ready, receiving messages for %s via %s", self.phone_number, self.base_url)
        alerts = getattr(self.assistant, "alerts", None)
        if alerts is not None:  # alerts the Telegram process left for people on Signal
            self._relay = asyncio.create_task(self._relay_alerts(alerts("signal")))

    async def _relay_alerts(self, alerts: AsyncIterator[AdminAlert]) -> None:
        async for alert in alerts:
            try:
                await self.send_alert(alert)
            except Exception:
                log.exception("Signal: could not deliver an alert from the other messenger")

    async def stop(self) -> None:
        """Stop receiving, cancel answers in progress and close connections."""
        self.ready.clear()
        if self._relay is not None:
            self._relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay
            self._relay = None
        bot = self.bot
        if bot is not None:
            if bot.init_task is not None and not bot.init_task.done():
                bot.init_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await bot.init_task
            # Not bot.stop(): that also stops the event loop, which is not ours to stop.
            await bot._pipeline.stop()
        # Answers in progress first, while their connection is still open (they stop typing).
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.bot = None
        if bot is not None:
            await bot.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- start-up check --------------------------------------------------------------------

    async def check_service(self) -> None:
        """Raise SignalServiceProblem unless the service is reachable, json-rpc and has the number."""
        assert self._session is not None
        base = self.base_url
        try:
            async with self._session.get(f"{base}/v1/health") as resp:
                if resp.status != 204:
                    raise SignalServiceProblem(
                        f"signal-cli-rest-api at {base} is not healthy (GET /v1/health answered "
                        f"{resp.status}); check the signal-api container's log"
                    )
            async with self._session.get(f"{base}/v1/about") as resp:
                about = await resp.json(content_type=None)
            async with self._session.get(f"{base}/v1/accounts") as resp:
                accounts = await resp.json(content_type=None) if resp.status == 200 else []
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise SignalServiceProblem(
                f"cannot reach signal-cli-rest-api at {base} ({e.__class__.__name__}: {e}); "
                "is the container running and SIGNAL_SERVICE (host:port, no scheme) right?"
            ) from e
        mode = str(about.get("mode")) if isinstance(about, dict) else "?"
        version = str(about.get("version")) if isinstance(about, dict) else "?"
        if mode != "json-rpc":
            raise SignalServiceProblem(
                f"signal-cli-rest-api at {base} runs in mode '{mode}', but Ferry needs MODE=json-rpc: "
                "set MODE=json-rpc in the signal-api container's environment and restart it"
            )
        if version != "unset":
            try:
                too_old = Version(version) < MIN_SIGNAL_CLI_REST_API_VERSION
            except InvalidVersion:
                too_old = False
            if too_old:
                raise SignalServiceProblem(
                    f"signal-cli-rest-api at {base} is version {version}; Ferry needs "
                    f"{MIN_SIGNAL_CLI_REST_API_VERSION} or newer: pull a newer bbernhard/signal-cli-rest-api"
                )
        if not isinstance(accounts, list) or self.phone_number not in accounts:
            raise SignalServiceProblem(
                f"the number {self.phone_number} is not registered with signal-cli-rest-api at {base}: "
                f"link it by opening {base}/v1/qrcodelink?device_name=ferry and scanning the QR code in "
                "Signal (Settings > Linked devices), or register it with POST /v1/register/"
                f"{self.phone_number}; check SIGNAL_PHONE_NUMBER"
            )

    async def _wait_for_service(self) -> None:
        last = ""
        async for delay in self.startup_backoff.delays():
            try:
                await self.check_service()
            except SignalServiceProblem as problem:
                message = str(problem)
                if message != last:  # one clear line per problem, not one per retry
                    log.error("Signal: %s (retrying with backoff)", message)
                    last = message
                else:
                    log.debug("Signal: still waiting (%s); next try in %.1fs", message, delay)
                await asyncio.sleep(delay)
                continue
            if last:
                log.info("Signal: signal-cli-rest-api at %s is ready now", self.base_url)
            return

    # --- receiving ------------------------------------------------------------------------

    @property
    def receiving(self) -> bool:
        """Ready, and the receive WebSocket is up: it never dropped, or the connection made
        since its last drop has held for a few seconds."""
        if not self.ready.is_set():
            return False
        if not self._dropped_at:
            return True
        return self._connecting_since > self._dropped_at and time.monotonic() - self._connecting_since > 2.0

    def _harden_receive(self, bot: SignalBot) -> None:
        """Wrap signalbot's receive stream: skip malformed frames, reconnect when it ends.

        signalbot 2.2.1 (pinned) offers no public hook for its WebSocket stream; this wraps
        the one method its producer iterates. tests/bots/test_signal_bot.py pins the
        behaviour, so an upgrade that moves it fails loudly.
        """
        messages = bot._signal.messages
        original = messages.receive
        backoff = self.reconnect_backoff

        async def receive() -> AsyncIterator[str]:
            delays = backoff.delays()
            while True:
                got_any = False
                self._connecting_since = time.monotonic()
                try:
                    async for raw in original():
                        if not got_any:
                            got_any = True
                            delays = backoff.delays()  # a working connection resets the backoff
                        if self._frame_is_usable(raw):
                            yield raw
                    reason = "was closed by signal-cli-rest-api"
                except ReceiveError as e:
                    reason = f"failed ({e})"
                self._dropped_at = time.monotonic()
                delay = await anext(delays)
                log.warning("Signal: the receive WebSocket %s; reconnecting in %.1fs", reason, delay)
                await asyncio.sleep(delay)

        messages.receive = receive  # type: ignore[method-assign]

    def _frame_is_usable(self, raw: str) -> bool:
        try:
            frame = ReceivedFrame.model_validate_json(raw)
        except ValidationError as e:
            error = _error_frame(raw)
            if error is not None:
                log.warning("Signal: signal-cli-rest-api reported an error: %s", error)
            else:
                errors = e.errors()
                where = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
                what = errors[0]["msg"] if errors else str(e)
                log.warning("Signal: skipped a malformed message frame (%s: %s): %.200s", where or "frame", what, raw)
            return False
        # A sync message was sent by the bot's own account from another device: not one to
        # answer (signalbot would present it as coming from the person it was sent to).
        return frame.envelope.sync_message is None

    # --- incoming -------------------------------------------------------------------------

    def _accept(self, context: DataMessageContext) -> None:
        """Called by signalbot's consumer; starts the work without blocking the consumer."""
        message = context.message
        if isinstance(message, EditMessage):
            log.debug("Signal: ignoring an edit of an earlier message")
            return
        chat = self._chat_key(message)
        key = str(chat)
        previous = self._intake.get(key)
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._intake[key] = started
        task = asyncio.create_task(self._process(context, chat, previous, started))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

        def forget(_: object, key: str = key, started: asyncio.Future[None] = started) -> None:
            if self._intake.get(key) is started:
                del self._intake[key]

        started.add_done_callback(forget)

    async def _process(
        self,
        context: DataMessageContext,
        chat: ChatKey,
        previous: asyncio.Future[None] | None,
        started: asyncio.Future[None],
    ) -> None:
        reply = _Reply(self, context, chat)
        events: AsyncIterator[ReplyEvent] | None = None
        try:
            incoming = await self.to_incoming(context.message, chat)
            if previous is not None:
                await asyncio.shield(previous)
            events = self.assistant.handle(incoming)
            first = asyncio.ensure_future(anext(events, None))
            await asyncio.sleep(0)  # let the core take its place in the chat's queue
            if not started.done():
                started.set_result(None)
            event = await first
            while event is not None:
                await reply.render(event)
                event = await anext(events, None)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Signal: failed to handle a message in %s", chat)
        finally:
            if not started.done():
                started.set_result(None)
            # An answer abandoned halfway must release the chat's place in the core's queue now,
            # not whenever the garbage collector finalises the generator.
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
            await reply.finish()

    def _chat_key(self, message: DataMessage) -> ChatKey:
        if message.is_group() and message.group_info is not None and message.group_info.group_id:
            return ChatKey(PLATFORM, message.group_info.group_id, is_group=True)
        return ChatKey(PLATFORM, message.source_uuid or message.source_number or "unknown")

    def _is_me(self, uuid: str | None, number: str | None) -> bool:
        return (number is not None and number == self.phone_number) or (
            uuid is not None and self.bot_uuid is not None and uuid == self.bot_uuid
        )

    async def to_incoming(self, message: DataMessage, chat: ChatKey | None = None) -> Incoming:
        """Translate signalbot's message into the core's value (downloading documents)."""
        chat = chat or self._chat_key(message)
        uuid, number = message.source_uuid, message.source_number
        sender = Identity(PLATFORM, uuid or number or "unknown")
        aliases = (f"{PLATFORM}:{number}",) if number and uuid else ()
        mentioned = any(self._is_me(m.uuid, m.number) for m in message.mentions or [])
        text = self._text_without_mentions(message)
        quoted = message.quote
        replied_to_me = quoted is not None and self._is_me(quoted.author_uuid, quoted.author_number or quoted.author)
        addressed = not chat.is_group or mentioned or replied_to_me or text.lstrip().startswith("/")

        callback = self._choice(chat, number, text)
        attachments = tuple(
            [await self._attachment(a) for a in message.attachments or []]
        )
        return Incoming(
            sender=sender,
            chat=chat,
            text="" if callback is not None else text,
            sender_name=message.source_name or number or None,
            aliases=aliases,
            attachments=attachments,
            addressed=addressed or callback is not None,
            quoted_text=quoted.text if quoted is not None else None,
            message_id=str(message.timestamp),
            callback=callback,
            raw=message,
        )

    def _text_without_mentions(self, message: DataMessage) -> str:
        text = message.text or ""
        if _MENTION not in text:
            return text.strip()
        # Mention offsets count UTF-16 units; walk the placeholders in order instead.
        mentions = sorted(message.mentions or [], key=lambda m: m.start)
        out: list[str] = []
        index = 0
        for ch in text:
            if ch != _MENTION:
                out.append(ch)
                continue
            mention = mentions[index] if index < len(mentions) else None
            index += 1
            if mention is None or self._is_me(mention.uuid, mention.number):
                continue
            out.append("@" + (mention.name or mention.number or "someone"))
        return " ".join("".join(out).split(" ")).strip()

    def _choice(self, chat: ChatKey, number: str | None, text: str) -> str | None:
        keys = [chat.chat_id] + ([number] if number and not chat.is_group else [])
        offered = next((self._choices[k] for k in keys if k in self._choices), None)
        if offered is None:
            return None
        for k in keys:  # answered or not, these choices were for this message only
            self._choices.pop(k, None)
        match = _CHOICE.match(text)
        if match is None:
            return None
        pick = int(match.group(1))
        return offered[pick - 1].data if 1 <= pick <= len(offered) else None

    def remember_choices(self, chat_id: str, buttons: Sequence[Sequence[Button]]) -> list[Button]:
        """Record the choices just offered in a chat; returns them numbered in order."""
        choices = numbered_choices(buttons)
        if choices:
            self._choices[chat_id] = choices
        else:
            self._choices.pop(chat_id, None)
        return choices

    async def _attachment(self, attachment: SignalAttachment) -> Attachment:
        mime = attachment.content_type or "application/octet-stream"
        kind = _kind_of(mime, attachment.is_voice_note)
        data: bytes | None = None
        if kind == "document" and attachment.local_filename:
            data = await self.download(attachment.local_filename)
        return Attachment(
            kind=kind,
            filename=attachment.remote_filename,
            mime_type=mime,
            size=attachment.size if attachment.size is not None else (len(data) if data else None),
            data=data,
        )

    async def download(self, attachment_id: str) -> bytes | None:
        """Fetch an attachment's bytes from ``/v1/attachments/{id}`` (None if it failed)."""
        assert self._session is not None
        try:
            async with self._session.get(f"{self.base_url}/v1/attachments/{attachment_id}") as resp:
                resp.raise_for_status()
                return await resp.read()
        except (aiohttp.ClientError, TimeoutError) as e:
            log.warning("Signal: could not download attachment %s: %s", attachment_id, e)
            return None

    # --- outgoing helpers -----------------------------------------------------------------

    async def send_alert(self, alert: AdminAlert) -> None:
        """Deliver an AdminAlert to each Signal identity among its recipients."""
        if self.bot is None:
            return
        for identity in alert.to:
            recipient = recipient_of(identity)
            if recipient is None:
                continue
            choices = self.remember_choices(recipient, alert.buttons)
            try:
                await self.bot.messages.send(styled(with_choices(alert.text, choices)), recipient)
            except (SignalAPIError, ValueError) as e:
                log.warning("Signal: could not alert %s: %s", identity, e)


def _kind_of(mime: str, is_voice_note: bool) -> str:
    if is_voice_note:
        return "voice"
    major = mime.split("/", 1)[0]
    if major == "image":
        return "photo"
    if major in ("audio", "video"):
        return major
    return "document"


def _error_frame(raw: str) -> str | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if isinstance(data, dict) and set(data) == {"error"}:
        return str(data["error"])
    return None


class _Handler(DataMessageHandler):
    """signalbot's entry; hands every data message to the adapter."""

    def __init__(self, adapter: SignalAdapter) -> None:
        self.adapter = adapter

    async def handle_data_message(self, context: DataMessageContext) -> None:
        self.adapter._accept(context)


# --- rendering one answer -------------------------------------------------------------------


class _Reply:
    """Renders the reply events for one incoming message into Signal messages."""

    def __init__(self, adapter: SignalAdapter, context: DataMessageContext, chat: ChatKey) -> None:
        self.adapter = adapter
        self.context = context
        self.chat = chat
        self.stream: SentMessage | None = None  # the message being edited while streaming
        self.shown = ""  # the Markdown last sent to it
        self.latest = ""  # the Markdown the core has produced so far
        self.last_edit = 0.0
        self.flusher: asyncio.Task[None] | None = None
        self.stream_failed = False  # the first send of a streamed answer failed: send it whole
        self.typing: asyncio.Task[None] | None = None
        self.progress: SentMessage | None = None
        self.lock = asyncio.Lock()
        self.loop = asyncio.get_running_loop()

    async def render(self, event: ReplyEvent) -> None:
        if isinstance(event, StreamStart):
            self.start_typing()
        elif isinstance(event, PartialAnswer):
            await self.delta(event.text)
        elif isinstance(event, FinalText):
            await self.final(event.text, event.buttons)
        elif isinstance(event, Notice):
            await self.notice(event.text, event.buttons)
        elif isinstance(event, FileReply):
            await self.file(event)
        elif isinstance(event, Progress):
            await self.show_progress(event)
        elif isinstance(event, Reaction):
            await self.guard(self.context.react(event.emoji), "react")
        elif isinstance(event, AdminAlert):
            await self.adapter.send_alert(event)

    # typing

    def start_typing(self) -> None:
        if self.typing is None:
            self.typing = asyncio.create_task(self._keep_typing())

    async def _keep_typing(self) -> None:
        while True:
            await self.guard(self.context.start_typing(), "start typing")
            await asyncio.sleep(self.adapter.typing_refresh)

    async def stop_typing(self) -> None:
        if self.typing is None:
            return
        task, self.typing = self.typing, None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await self.guard(self.context.stop_typing(), "stop typing")

    # streaming

    async def delta(self, markdown: str) -> None:
        self.latest = markdown
        if self.stream is None:
            if self.stream_failed:
                return  # the whole answer goes as one message at the end
            async with self.lock:
                if self.stream is None and markdown.strip():
                    try:
                        self.stream = await self.send(styled(markdown))
                    except SignalAPIError as e:  # e.g. rate limited: do not lose the answer over it
                        log.info("Signal: the start of an answer could not be sent (%s); it follows whole", e)
                        self.stream_failed = True
                        return
                    self.shown, self.last_edit = markdown, self.loop.time()
            return
        wait = self.last_edit + self.adapter.edit_interval - self.loop.time()
        if wait <= 0 and self.flusher is None:
            await self.flush()
        elif self.flusher is None:
            self.flusher = asyncio.create_task(self._flush_later(wait))

    async def _flush_later(self, wait: float) -> None:
        await asyncio.sleep(wait)
        self.flusher = None
        await self.flush()

    async def flush(self) -> None:
        async with self.lock:
            if self.stream is None or self.latest == self.shown:
                return
            text = self.latest
            try:
                await self.adapter_bot().messages.edit(styled(text), self.stream)
                self.shown = text
            except SignalAPIError as e:  # e.g. rate limited: skip this edit, the final one follows
                log.info("Signal: an edit while streaming failed: %s", e)
            self.last_edit = self.loop.time()

    async def cancel_flusher(self) -> None:
        if self.flusher is not None:
            task, self.flusher = self.flusher, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def final(self, markdown: str, buttons: Sequence[Sequence[Button]]) -> None:
        await self.cancel_flusher()
        choices = self.adapter.remember_choices(self.chat.chat_id, buttons)
        full = with_choices(markdown, choices)
        async with self.lock:
            stream, shown = self.stream, self.shown
            self.stream, self.latest, self.shown = None, "", ""
            if stream is None:
                await self.deliver(full)
            elif full != shown:  # already showing exactly this: an edit would change nothing
                await self.deliver(full, edit=stream)
        await self.stop_typing()

    async def deliver(self, markdown: str, edit: SentMessage | None = None) -> None:
        """Send (or finish by editing) one complete message, falling back to plain text."""
        bot = self.adapter_bot()
        attempts: list[tuple[bool, SentMessage | None]] = [(False, edit)]
        if edit is not None:
            attempts += [(True, edit), (True, None)]  # plain edit, then a new plain message
        else:
            attempts += [(True, None)]
        for i, (plain, target) in enumerate(attempts):
            message = styled(markdown, plain=plain)
            try:
                if target is None:
                    await self.send(message)
                else:
                    await bot.messages.edit(message, target)
                return
            except SignalAPIError as e:
                log.warning("Signal: delivering a reply failed (attempt %d): %s", i + 1, e)
                await asyncio.sleep(min(self.adapter.edit_interval, 1.0) * (i + 1))
        log.error("Signal: gave up delivering a reply in %s", self.chat)

    async def notice(self, markdown: str, buttons: Sequence[Sequence[Button]]) -> None:
        choices = self.adapter.remember_choices(self.chat.chat_id, buttons)
        async with self.lock:
            await self.deliver(with_choices(markdown, choices))

    async def file(self, event: FileReply) -> None:
        encoded = base64.b64encode(event.data).decode()
        name = event.filename.replace(";", "_").replace(",", "_")
        message = styled(event.caption or "")
        message.base64_attachments = [f"data:{event.mime_type};filename={name};base64,{encoded}"]
        async with self.lock:
            await self.guard(self.send(message), "send a file")

    async def show_progress(self, event: Progress) -> None:
        text = f"{event.text} ({event.done}/{event.total})"
        async with self.lock:
            if self.progress is None:
                sent = await self.guard(self.send(styled(text)), "send progress")
                self.progress = sent if isinstance(sent, SentMessage) else None
            else:
                await self.guard(self.adapter_bot().messages.edit(styled(text), self.progress), "edit progress")

    async def finish(self) -> None:
        """After the last event: never leave a half-streamed answer or a typing indicator."""
        await self.cancel_flusher()
        if self.stream is not None and self.latest and self.latest != self.shown:
            await self.final(self.latest, ())
        await self.stop_typing()

    # plumbing

    def adapter_bot(self) -> SignalBot:
        bot = self.adapter.bot
        if bot is None:
            raise SignalAPIError("the Signal adapter is stopped")
        return bot

    async def send(self, message: SendMessage) -> SentMessage:
        return await self.context.send(message)

    @staticmethod
    async def guard(call: Awaitable[Any], what: str) -> Any:
        try:
            return await call
        except (SignalAPIError, ValueError) as e:
            log.info("Signal: could not %s: %s", what, e)
            return None


# --- the process --------------------------------------------------------------------------


async def run(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """``ferry signal``: run the Signal bot until SIGINT/SIGTERM (or ``stop`` is set)."""
    from bots.health import serve_health
    from core.app import build_assistant
    from core.settings import SettingsError

    if not settings.signal_service or not settings.signal_phone_number:
        raise SettingsError(
            "SIGNAL_SERVICE (host:port of signal-cli-rest-api in json-rpc mode, e.g. signal-api:8080) "
            "and SIGNAL_PHONE_NUMBER (the bot's number, e.g. +4915112345678) must both be set"
        )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[os_signal.Signals] = []
    for sig in (os_signal.SIGINT, os_signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    assistant = build_assistant(settings)
    await assistant.start()
    adapter = SignalAdapter(
        assistant, service=settings.signal_service, phone_number=settings.signal_phone_number
    )
    try:
        async with serve_health(settings, assistant, "Signal", lambda: adapter.receiving):
            starting = asyncio.create_task(adapter.start())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if starting.done():
                starting.result()
                await stopping
            else:
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
    finally:
        log.info("Signal: stopping")
        await adapter.stop()
        await assistant.close()
        for sig in handled:
            loop.remove_signal_handler(sig)


__all__ = [
    "AssistantLike",
    "Backoff",
    "SignalAdapter",
    "SignalServiceProblem",
    "numbered_choices",
    "recipient_of",
    "run",
    "styled",
    "with_choices",
]
