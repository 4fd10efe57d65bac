"""The Telegram handlers: every message and button press goes to the core, replies come back.

:meth:`TelegramBot.take` is the one way in, from Ferry's polling loop or webhook
(:mod:`bots.telegram.polling`): it returns once the update is recorded by the core, so the
caller confirms it upstream only then. Answers are then shown concurrently, each by its own
task: the core orders messages per conversation itself, and ``/cancel`` must be able to overtake
an answer that is still being written. An edited message is not a new question: it is ignored,
as on Signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from typing import Any

from telegram import BotCommand, CallbackQuery, Message, Update
from telegram.error import TelegramError
from telegram.ext import Application, filters

from bots.intake import (
    Intake,
    Marker,
    deliver,
    pending_replies,
    previous_ref,
    receiver_for,
    route_of,
)
from bots.relay import AlertRelay
from bots.telegram.incoming import chat_key, incoming_from_callback, incoming_from_message, target_for
from bots.telegram.media import Albums
from bots.telegram.pacing import ChatPacer, FloodGate, SendLimiter
from bots.telegram.probe import MessageIds, Search, Sending
from bots.telegram.reply import TelegramReply
from bots.telegram.send import (
    PLATFORM,
    Pacing,
    Sender,
    Target,
    flood_counter,
)
from bots.telegram.thinking import EarlyThinking, InFlight
from bots.telegram.updates import UpdateParser
from core.contract import Core
from core.media.spool import Spool
from core.reply import Reply
from core.types import AdminAlert, ChatKey, Incoming

log = logging.getLogger(__name__)


class TelegramBot:
    """The handlers that connect one :class:`Application` to the core."""

    def __init__(self, core: Core, pacing: Pacing | None = None, spool: Spool | None = None) -> None:
        self.core = core
        self.spool = spool  # where received files are streamed (core/media/spool.py)
        self.pacing = pacing or Pacing()
        self.gate = FloodGate(on_flood=flood_counter(core.metrics))
        self.pacer = ChatPacer(self.pacing.edit_interval)  # one pace per group, for all its answers
        self.limiter = SendLimiter(self.pacing.global_rate)
        self.moves: dict[int, int] = {}  # a group upgraded to a supergroup: old id → new id
        self.ids = MessageIds()  # message ids seen and sent, for finding a send cut short (probe.py)
        self.search = Search()
        self.intake = Intake()
        self.receive = receiver_for(core)
        self.albums = Albums()  # an album's photos become one message (bots/telegram/media.py)
        self.thinking = EarlyThinking(self.sender)  # the draft at receipt (bots/telegram/thinking.py)
        self._relay: AlertRelay | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._recovery: asyncio.Task[None] | None = None

    async def send_alert(self, app: Application[Any, Any, Any, Any, Any, Any], alert: AdminAlert) -> None:
        """Send an alert to each of its ``telegram:<id>`` recipients (others are not ours)."""
        sender = self.sender(app)
        for identity in alert.to:
            platform, _, ident = identity.partition(":")
            if platform != PLATFORM or not ident.lstrip("-").isdigit():
                continue
            try:
                async with self.ids.lock(int(ident)):  # never between an answer's mark and its send
                    await sender.deliver(Target(chat_id=int(ident)), alert.text, alert.buttons)
            except TelegramError as exc:
                log.warning("could not alert %s: %s", identity, exc)

    def sender(self, app: Application[Any, Any, Any, Any, Any, Any] | None = None) -> Sender:
        """A sender sharing this bot's flood gates, pacing and global limit (through ``app`` or its own)."""
        through = app if app is not None else self.app
        return Sender(through, self.gate, self.pacing, self.pacer, self.limiter, self.moves, self.ids)

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
        """Attach to ``app``: updates reach :meth:`take` from Ferry's own polling loop or webhook,
        not from PTB's dispatcher (which confirms updates before they are recorded)."""
        self.app = app
        self.parser = UpdateParser(app.bot)

    async def set_commands(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        """Register the command menu in English (the default) and every other language with texts."""
        for lang in self.core.menu_languages():
            commands = [BotCommand(name, desc[:256]) for name, desc in self.core.command_menu(lang)]
            try:
                await app.bot.set_my_commands(commands, language_code=None if lang == "en" else lang)
            except TelegramError as exc:
                log.warning("could not set the %s command menu: %s", lang, exc)

    async def take(self, raw: object) -> None:
        """Take one raw update: returns once it is recorded (or known to need no answer), its
        answer then shown by a task of its own. Raises only when recording failed (the store),
        so that the update is not confirmed upstream and comes again."""
        update = self.parser.parse(raw)
        if update is None:
            return
        if update.callback_query is not None:
            await self._take_callback(update)
        elif update.message is not None:
            await self._take_message(update)
        else:
            # An edited message is not a new question (and Signal ignores edits too); other
            # kinds are not asked for (ALLOWED_UPDATES) and carry nothing to answer.
            log.debug("Telegram: update %s needs no answer", update.update_id)

    async def _take_message(self, update: Update) -> None:
        message = update.message
        if message is not None and (message.migrate_to_chat_id or message.migrate_from_chat_id):
            await self.on_migrate(message)  # the one service message that matters: history moves
            return
        if message is None or message.from_user is None:
            return
        # A service message (someone joined, a pin, a video chat...) carries no text; the check of
        # all 46 kinds is skipped for the messages that do.
        if message.text is None and filters.StatusUpdate.ALL.check_update(update):
            return
        self.ids.saw(message.chat.id, message.message_id)
        # The ticket is taken before any await: a document's download cannot be overtaken.
        ticket = self.intake.enter(str(chat_key(message, message.from_user)))
        target = target_for(message, message.from_user.language_code)
        flight = self.thinking.arrived(message)
        if flight.early:  # a file to fetch and read: the thinking draft goes out beside it
            self.spawn(self.thinking.show(target))

        async def read() -> Incoming | None:
            try:
                return await incoming_from_message(message, self.app.bot.bot, self.albums, self.spool)
            except Exception as exc:
                log.error("Telegram: could not read update %s (%s)", update.update_id, type(exc).__name__)
                return None

        async def record(incoming: Incoming) -> Reply | None:
            return await self.receive(incoming, f"{PLATFORM}:{update.update_id}", asdict(target))

        try:
            reply = await ticket.submit(read, record)
        except BaseException:
            flight.done()
            raise
        if reply is None:
            flight.done()
            return
        self.spawn(self._served(reply, target, flight))

    async def _served(self, reply: Reply, target: Target, flight: InFlight) -> None:
        try:
            await self.serve(self.app, reply, target, flight.done)
        finally:
            flight.done()

    async def on_migrate(self, message: Message) -> None:
        """A group became a supergroup (``migrate_to_chat_id`` in the old chat, ``migrate_from_chat_id``
        in the new one; both arrive): later sends go to the new id, the group's history moves once."""
        if message.migrate_to_chat_id:
            old, new = message.chat.id, int(message.migrate_to_chat_id)
        elif message.migrate_from_chat_id:
            old, new = int(message.migrate_from_chat_id), message.chat.id
        else:
            return
        self.moves[old] = new
        try:
            await self.core.move_chat(
                ChatKey(PLATFORM, str(old), is_group=True), ChatKey(PLATFORM, str(new), is_group=True)
            )
        except Exception:
            log.exception("could not move the conversations of chat %s to %s", old, new)

    async def _take_callback(self, update: Update) -> None:
        query = update.callback_query
        assert query is not None
        incoming, target = incoming_from_callback(query)
        reply = await self.receive(incoming, f"{PLATFORM}:{update.update_id}", asdict(target))

        async def acknowledge_and_serve() -> None:
            try:
                await query.answer()
            except TelegramError as exc:
                log.info("could not answer callback query: %s", exc)
            await retire_keyboard(query)
            if reply is not None:
                await self.serve(self.app, reply, target)

        self.spawn(acknowledge_and_serve())

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` (showing one answer) as a task that :meth:`drain` waits for."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, cancel: bool = False) -> None:
        """Wait for the answers being shown (cancel them first with ``cancel``)."""
        while self._tasks:
            tasks = list(self._tasks)
            if cancel:
                for task in tasks:
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def serve(
        self,
        app: Application[Any, Any, Any, Any, Any, Any],
        reply: Reply,
        target: Target,
        finished: Callable[[], None] | None = None,
    ) -> None:
        """Render one message's reply, start to end, then mark it delivered; never raises.
        ``finished`` is called once the last event is shown (before the delivered mark is written).

        A reply handed over again after a restart edits the placeholder an earlier run left
        (groups); where an earlier run was sending new messages, the part it marked is looked
        for first and only what did not arrive is sent (``marked.py``).
        """
        lang = self.core.language(target.lang)
        target = Target(target.chat_id, target.thread_id, target.reply_to, target.is_private, lang, target.message_id)

        async def show(events: Reply, shown: Marker, resume: int | None) -> None:
            view = TelegramReply(self, app, target)
            view.on_shown, view.resume = shown, resume
            view.resume_mark = Sending.parse(previous_ref(events))
            try:
                async for event in events:
                    await view.render(event)
                await view.close()
            except asyncio.CancelledError:
                view.cancel()
                raise
            except Exception as exc:
                log.error("failed to answer in chat %s (%s)", target.chat_id, type(exc).__name__, exc_info=exc)
                await view.fail(self.core.text(lang, "error.internal"))
            finally:
                if finished is not None:
                    finished()

        await deliver(reply, show)

    def start_recovery(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        """Deliver the answers an earlier run recorded but did not deliver (call before taking updates)."""
        if self._recovery is not None:
            return
        pending = pending_replies(self.core, PLATFORM)

        async def recover() -> None:
            async for reply in pending:
                route = route_of(reply)
                try:
                    target = Target(**route)
                except TypeError:
                    log.error("Telegram: a recorded answer without a usable route; not delivered")
                    await reply.aclose()
                    continue
                self.spawn(self.serve(app, reply, target))

        self._recovery = asyncio.create_task(recover())

    async def stop_recovery(self) -> None:
        """Stop handing over recorded answers."""
        task, self._recovery = self._recovery, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def retire_keyboard(query: CallbackQuery) -> None:
    """A pressed keyboard is used up: take it off its message, so a preview or a choice cannot be
    pressed twice and only the newest one (say, a WhatsApp preview after "Swap roles") stays live."""
    if query.message is None:
        return
    try:
        await query.edit_message_reply_markup(reply_markup=None)
    except TelegramError as exc:  # too old to edit, or already gone: nothing is pressable then either
        log.info("could not remove a used keyboard: %s", exc)
