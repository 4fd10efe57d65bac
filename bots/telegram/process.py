"""The Telegram bot process (``ferry telegram``): python-telegram-bot wired to the core.

It turns each update into one :class:`~core.types.Incoming`, feeds it to
``Assistant.handle`` and renders the reply events Telegram's way:

* private chats stream through ``sendMessageDraft`` and finish with one ``sendMessage``;
* groups get a placeholder that is edited at most about once a second;
* flood control (``retry_after``) pauses the chat's previews and delays, never drops or
  repeats, the final text; a refused HTML part is sent again as plain text;
* long answers are split by :mod:`bots.telegram.render` without breaking code blocks.

Updates are processed concurrently: the core orders messages per conversation itself, and
``/cancel`` must be able to overtake an answer that is still being written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator
from typing import Any, Protocol
from urllib.parse import urlsplit

from telegram import BotCommand, Message, Update
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bots.relay import AlertRelay
from bots.telegram.http import AiohttpRequest
from bots.telegram.incoming import chat_key, incoming_from_callback, incoming_from_message, target_for
from bots.telegram.reply import TelegramReply
from bots.telegram.send import (
    ALLOWED_UPDATES,
    MENU_LANGUAGES,
    PLATFORM,
    FloodGate,
    Pacing,
    Sender,
    Target,
    flood_counter,
)
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

    requests, polls = AiohttpRequest(pool_size), AiohttpRequest(1)
    app = (
        ApplicationBuilder()
        .token(token)
        .base_url(f"{root}/bot")
        .base_file_url(f"{root}/file/bot")
        .concurrent_updates(concurrency)
        .request(requests)
        .get_updates_request(polls)
        .post_init(post_init)
        .post_shutdown(post_shutdown)
        .build()
    )
    bot.install(app)
    app.bot_data["ferry"] = bot
    app.bot_data["ferry_transport"] = (requests, polls)
    return app


def connected(app: Application[Any, Any, Any, Any, Any, Any], *, polling: bool) -> bool:
    """Whether the bot is running and its last exchange with the Bot API server got through
    (long polling: the last getUpdates; a webhook: the last request the bot made)."""
    if not (app.running and app.updater is not None and app.updater.running):
        return False
    requests, polls = app.bot_data["ferry_transport"]
    return bool((polls if polling else requests).reachable)


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

    def is_connected() -> bool:
        return connected(app, polling=not settings.telegram_webhook_url)

    async def post_init(a: Application[Any, Any, Any, Any, Any, Any]) -> None:
        if started is not None:
            await started(a)
        await stack.enter_async_context(serve_health(settings, assistant, "Telegram", is_connected))

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
