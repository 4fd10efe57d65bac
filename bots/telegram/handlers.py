"""The Telegram handlers: every message and button press goes to the core, replies come back.

Updates are processed concurrently: the core orders messages per conversation itself, and
``/cancel`` must be able to overtake an answer that is still being written.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from telegram import BotCommand, Update
from telegram.error import TelegramError
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from bots.intake import Intake
from bots.relay import AlertRelay
from bots.telegram.incoming import chat_key, incoming_from_callback, incoming_from_message, target_for
from bots.telegram.reply import TelegramReply
from bots.telegram.send import PLATFORM, FloodGate, Pacing, Sender, Target, flood_counter
from core.contract import Core
from core.reply import Reply
from core.types import AdminAlert, Incoming

log = logging.getLogger(__name__)


class TelegramBot:
    """The handlers that connect one :class:`Application` to the core."""

    def __init__(self, core: Core, pacing: Pacing | None = None) -> None:
        self.core = core
        self.pacing = pacing or Pacing()
        self.gate = FloodGate(on_flood=flood_counter(core.metrics))
        self.intake = Intake()
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
        if self._relay is None:

            async def send(alert: AdminAlert) -> None:
                await self.send_alert(app, alert)

            self._relay = AlertRelay(send, "Telegram")
            self._relay.start(self.core.alerts(PLATFORM))

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
        """Register the command menu in English (the default) and every other language with texts."""
        for lang in self.core.menu_languages():
            commands = [BotCommand(name, desc[:256]) for name, desc in self.core.command_menu(lang)]
            try:
                await app.bot.set_my_commands(commands, language_code=None if lang == "en" else lang)
            except TelegramError as exc:
                log.warning("could not set the %s command menu: %s", lang, exc)

    async def on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A person's message: submitted in the chat's arrival order, its answer rendered."""
        message = update.effective_message
        if message is None or message.from_user is None:
            return
        # The ticket is taken before any await: a document's download cannot be overtaken.
        ticket = self.intake.enter(str(chat_key(message, message.from_user)))
        target = target_for(message, message.from_user.language_code)

        async def read() -> Incoming | None:
            try:
                return await incoming_from_message(message, context.bot.bot)
            except Exception:
                log.exception("could not read update %s", update.update_id)
                return None

        reply = await ticket.submit(read, self.core.submit)
        if reply is not None:
            await self.serve(context.application, reply, target)

    async def on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A button press: submitted at once (before acknowledging it), its answer rendered."""
        query = update.callback_query
        if query is None:
            return
        incoming, target = incoming_from_callback(query)
        reply = self.core.submit(incoming)
        try:
            await query.answer()
        except TelegramError as exc:
            log.info("could not answer callback query: %s", exc)
        await self.serve(context.application, reply, target)

    async def serve(self, app: Application[Any, Any, Any, Any, Any, Any], reply: Reply, target: Target) -> None:
        """Render one submitted message's reply, start to end; never raises."""
        lang = self.core.language(target.lang)
        target = Target(target.chat_id, target.thread_id, target.reply_to, target.is_private, lang, target.message_id)
        view = TelegramReply(self, app, target)
        async with reply:
            try:
                async for event in reply:
                    await view.render(event)
                await view.close()
            except asyncio.CancelledError:
                view.typing.cancel()
                raise
            except Exception:
                log.exception("failed to answer in chat %s", target.chat_id)
                await view.fail(self.core.text(lang, "error.internal"))

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("error while handling an update", exc_info=context.error)
