"""The Signal bot process (``ferry signal``): a thin adapter between signalbot and the core.

It turns each Signal message into one :class:`~core.types.Incoming`, calls
``core.submit`` for it as it arrives (the core keeps each chat in line), and renders
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
import contextlib
import logging
import signal as os_signal
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import aiohttp
from signalbot import (
    Config,
    ConnectionMode,
    DataMessageContext,
    DataMessageHandler,
    EditMessage,
    InMemoryConfig,
    SignalAPIError,
    SignalBot,
)

from bots.choices import with_choices
from bots.intake import (
    Intake,
    Marker,
    Ticket,
    deliver,
    pending_replies,
    receiver_for,
    route_of,
)
from bots.relay import AlertRelay
from bots.services import (
    Backoff,
    ServiceProblem,
    check_signal_service,
    signal_base_url,
    signal_host_port,
    wait_until_ready,
)
from bots.signal.backlog import PersistedBacklog
from bots.signal.connection import RECONNECT_CAP, RECONNECT_FIRST, ReceiveLink
from bots.signal.incoming import PLATFORM, SignalReader, chat_key, recipient_of
from bots.signal.media import delete_attachment, fetch_attachment
from bots.signal.reply import SignalReply, styled
from bots.signal.seams import check_signalbot, replace_receive, stop_pipeline
from core.contract import Core
from core.media.spool import Spool
from core.reply import Reply
from core.types import AdminAlert, ChatKey, Incoming

if TYPE_CHECKING:
    from core.settings import Settings

log = logging.getLogger(__name__)

TYPING_REFRESH = 10.0
"""Seconds between typing indicators while an answer runs (Signal apps drop one after ~15 s)."""

STARTUP_BACKOFF = Backoff(0.2, 1.0)
"""Every second before the WebSocket is attached is lost mail (upstream #834): retry often (the
check's log line is written once per distinct problem, not per try)."""
RECONNECT_BACKOFF = Backoff(RECONNECT_FIRST, RECONNECT_CAP)

SignalServiceProblem = ServiceProblem
"""signal-cli-rest-api is unreachable or not set up for Ferry (the shared check's error)."""


# --- the adapter ----------------------------------------------------------------------------


class SignalAdapter:
    """Runs signalbot against one signal-cli-rest-api and feeds its messages to the core.

    ``service`` is ``host:port`` (a scheme is accepted too), ``phone_number`` the bot's
    account. Use :meth:`start` (returns once messages are being received) and :meth:`stop`.
    """

    def __init__(
        self,
        core: Core,
        *,
        service: str,
        phone_number: str,
        connection_mode: ConnectionMode = ConnectionMode.HTTP_ONLY,
        bot_uuid: str | None = None,
        edit_interval: float = 1.0,
        startup_backoff: Backoff = STARTUP_BACKOFF,
        reconnect_backoff: Backoff = RECONNECT_BACKOFF,
        typing_refresh: float = TYPING_REFRESH,
        admins: tuple[str, ...] = (),
        spool: Spool | None = None,
    ) -> None:
        self.core = core
        self.spool = spool  # where received files are streamed (core/media/spool.py)
        self.service = signal_host_port(service)
        self.base_url = signal_base_url(service, https=connection_mode == ConnectionMode.HTTPS_ONLY)
        self.phone_number = phone_number
        self.connection_mode = connection_mode
        self.edit_interval = edit_interval
        self.startup_backoff = startup_backoff
        self.reconnect_backoff = reconnect_backoff
        self.typing_refresh = typing_refresh
        self.bot: SignalBot | None = None
        self.ready = asyncio.Event()
        """Set once the service passed the checks and signalbot is receiving."""
        self.reader = SignalReader(phone_number, bot_uuid, self.download, self.delete_attachment)
        self._relay = AlertRelay(self.send_alert, "Signal")
        self.admins = admins
        ws_root = "ws" + self.base_url[len("http") :] if self.base_url.startswith("http") else self.base_url
        self.link = ReceiveLink(
            f"{ws_root}/v1/receive/{phone_number}",
            first=reconnect_backoff.first,
            cap=min(reconnect_backoff.most, RECONNECT_CAP),
            on_down=self._receiving_down,
            on_up=self._receiving_up,
        )
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._intake = Intake()
        self.receive = receiver_for(core)

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Check the service (retrying with backoff), start signalbot and wait until ready."""
        check_signalbot()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self.link.backlog = PersistedBacklog(self._session, self.base_url, self.phone_number)
        await wait_until_ready(self.check_service, self.startup_backoff, "Signal", log)
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
        replace_receive(bot, lambda _signalbots_own: self.link.frames)
        self.bot = bot
        self._start_recovery()
        await asyncio.sleep(0)  # the recovery has claimed its place: earlier runs' answers go first
        bot.start(run_forever=False)
        await bot.wait_until_ready()
        await self.link.wait_up()  # messages sent before the WebSocket is attached are dropped upstream
        self.ready.set()
        log.info("Signal: ready, receiving messages for %s via %s", self.phone_number, self.base_url)
        self._relay.start(self.core.alerts(PLATFORM))  # alerts the Telegram process left for people on Signal

    async def stop(self) -> None:
        """Stop receiving, cancel answers in progress and close connections."""
        self.ready.clear()
        await self._relay.stop()
        bot = self.bot
        if bot is not None:
            if bot.init_task is not None and not bot.init_task.done():
                bot.init_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await bot.init_task
            await stop_pipeline(bot)
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

    async def check_service(self) -> None:
        """Raise SignalServiceProblem unless the service is reachable, json-rpc and has the number."""
        assert self._session is not None
        await check_signal_service(self._session, self.base_url, self.phone_number)

    # --- receiving ------------------------------------------------------------------------

    @property
    def receiving(self) -> bool:
        """Ready, and a receive WebSocket is attached now."""
        return self.ready.is_set() and self.link.up

    async def _receiving_down(self, seconds: float) -> None:
        await self._tell_admins("signal.receive_down", seconds)

    async def _receiving_up(self, seconds: float) -> None:
        await self._tell_admins("signal.receive_up", seconds)

    async def _tell_admins(self, key: str, seconds: float) -> None:
        """Tell the Signal admins (sending may work while receiving does not)."""
        text = self.core.text("en", key, minutes=max(1, round(seconds / 60)))
        await self.send_alert(AdminAlert(to=self.admins, text=text))

    # --- incoming -------------------------------------------------------------------------

    def _accept(self, context: DataMessageContext) -> None:
        """Called by signalbot's consumer; starts the work without blocking the consumer."""
        message = context.message
        if isinstance(message, EditMessage):
            log.debug("Signal: ignoring an edit of an earlier message")
            return
        chat = chat_key(message)
        ticket = self._intake.enter(str(chat))  # before any await: the chat's arrival order
        self._spawn(self._process(context, chat, ticket))

    async def _process(self, context: DataMessageContext, chat: ChatKey, ticket: Ticket) -> None:
        message = context.message
        recipient = message.source_or_group_id()
        key = f"{PLATFORM}:{message.source_uuid or message.source_number}:{message.timestamp}"

        async def read() -> Incoming:
            return await self.reader.to_incoming(message, chat)

        async def record(incoming: Incoming) -> Reply | None:
            return await self.receive(incoming, key, {"recipient": recipient})

        try:
            reply = await ticket.submit(read, record)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("Signal: could not take a message in %s (%s)", chat, type(exc).__name__, exc_info=exc)
            return
        if reply is not None:
            await self._serve(reply, chat, context, recipient)

    async def _serve(self, reply: Reply, chat: ChatKey, context: DataMessageContext | None, recipient: str) -> None:
        """Show one reply, start to end, then mark it delivered; a stub an earlier run left is
        edited into the answer, and an answer whose final send had started is taken as delivered."""

        async def show(events: Reply, shown: Marker, resume: int | None) -> None:
            view = SignalReply(self, context, chat, recipient=recipient, on_shown=shown, resume=resume)
            try:
                async for event in events:
                    await view.render(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("Signal: failed to answer in %s (%s)", chat, type(exc).__name__, exc_info=exc)
            finally:
                await view.finish()

        await deliver(reply, show)

    def _start_recovery(self) -> None:
        """Deliver the answers an earlier run recorded but did not deliver (before receiving starts)."""
        pending = pending_replies(self.core, PLATFORM)

        async def recover() -> None:
            async for reply in pending:
                recipient = route_of(reply).get("recipient")
                incoming = reply.incoming
                if not isinstance(recipient, str) or incoming is None:
                    log.error("Signal: a recorded answer without a usable route; not delivered")
                    await reply.aclose()
                    continue
                self._spawn(self._serve_when_ready(reply, incoming.chat, recipient))

        self._spawn(recover())

    async def _serve_when_ready(self, reply: Reply, chat: ChatKey, recipient: str) -> None:
        await self.ready.wait()  # signalbot knows the groups once it is ready
        await self._serve(reply, chat, None, recipient)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def to_incoming(self, message: Any, chat: ChatKey | None = None) -> Incoming:
        """Translate signalbot's message into the core's value (see :class:`SignalReader`)."""
        return await self.reader.to_incoming(message, chat)

    async def download(self, attachment_id: str) -> bytes | str | None:
        """An attachment, into the spool if there is one (:func:`bots.signal.media.fetch_attachment`)."""
        assert self._session is not None
        return await fetch_attachment(self._session, self.base_url, attachment_id, self.spool)

    async def delete_attachment(self, attachment_id: str) -> None:
        """Remove a read attachment from signal-cli-rest-api (see :mod:`bots.signal.media`)."""
        assert self._session is not None
        await delete_attachment(self._session, self.base_url, attachment_id)

    # --- outgoing helpers -----------------------------------------------------------------

    async def send_alert(self, alert: AdminAlert) -> None:
        """Deliver an AdminAlert to each Signal identity among its recipients."""
        if self.bot is None:
            return
        for identity in alert.to:
            recipient = recipient_of(identity)
            if recipient is None:
                continue
            choices = self.reader.choices.remember(recipient, alert.buttons)
            try:
                await self.bot.messages.send(styled(with_choices(alert.text, choices)), recipient)
            except (SignalAPIError, ValueError) as e:
                log.warning("Signal: could not alert %s: %s", identity, e)


class _Handler(DataMessageHandler):
    """signalbot's entry; hands every data message to the adapter."""

    def __init__(self, adapter: SignalAdapter) -> None:
        self.adapter = adapter

    async def handle_data_message(self, context: DataMessageContext) -> None:
        self.adapter._accept(context)


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
        assistant, service=settings.signal_service, phone_number=settings.signal_phone_number, admins=settings.admins,
        spool=Spool.of(settings.data_dir, "signal"),
    )  # fmt: skip
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
    "Backoff",
    "SignalAdapter",
    "SignalServiceProblem",
    "recipient_of",
    "run",
    "with_choices",
]
