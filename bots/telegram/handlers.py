"""The Telegram handlers: every message and button press goes to the core, replies come back.

Updates are processed concurrently: the core orders messages per conversation itself, and
``/cancel`` must be able to overtake an answer that is still being written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

from telegram import BotCommand, Message, Update
from telegram.error import TelegramError
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from bots.relay import AlertRelay
from bots.telegram.incoming import chat_key, incoming_from_callback, incoming_from_message, target_for
from bots.telegram.reply import TelegramReply
from bots.telegram.send import MENU_LANGUAGES, PLATFORM, FloodGate, Pacing, Sender, Target, flood_counter
from core.types import AdminAlert, Incoming, ReplyEvent

log = logging.getLogger(__name__)


class AssistantLike(Protocol):
    """What the adapter needs from :class:`core.assistant.Assistant`."""

    def handle(self, msg: Incoming) -> AsyncIterator[ReplyEvent]: ...

    def command_menu(self, lang: str) -> list[tuple[str, str]]: ...

    def text(self, lang: str, key: str, **values: Any) -> str: ...

    def language(self, language_code: str | None) -> str: ...


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
        self.gate = FloodGate(on_flood=flood_counter(metrics) if metrics is not None else None)
        self.intake = _Intake()
        self._relay: AlertRelay | None = None

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

            async def send(alert: AdminAlert) -> None:
                await self.send_alert(app, alert)

            self._relay = AlertRelay(send, "Telegram")
            self._relay.start(alerts(PLATFORM))

    async def stop_relay(self) -> None:
        """Stop relaying alerts."""
        if self._relay is not None:
            relay, self._relay = self._relay, None
            await relay.stop()

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
        reply = TelegramReply(self, app, target)
        events = self.assistant.handle(incoming)
        try:
            async for event in events:
                await reply.render(event)
            await reply.close()
        except asyncio.CancelledError:
            reply.typing.cancel()
            raise
        except Exception:
            log.exception("failed to answer in chat %s", target.chat_id)
            await reply.fail(self.assistant.text(target.lang or "en", "error.internal"))
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("error while handling an update", exc_info=context.error)
