"""The Telegram bot process (``ferry telegram``): python-telegram-bot wired to the core.

It takes each update through Ferry's own polling loop or webhook server
(:mod:`bots.telegram.polling`), which confirm it upstream only once the core has recorded it
(``Core.receive``), and renders the reply events Telegram's way:

* private chats stream through ``sendMessageDraft`` and finish with one ``sendMessage``;
* groups get a placeholder that is edited at most about once a second;
* flood control (``retry_after``) pauses the chat's previews and delays, never drops or
  repeats, the final text; a refused HTML part is sent again as plain text;
* long answers are split by :mod:`bots.telegram.render` without breaking code blocks.

The handlers live in :mod:`bots.telegram.handlers`; this module builds the application (without
PTB's Updater) and runs it (long polling or a webhook), answers an earlier run left first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from telegram.error import NetworkError
from telegram.ext import Application, ApplicationBuilder

from bots import loop as event_loop
from bots.services import Backoff, ServiceProblem, wait_until_ready
from bots.telegram.handlers import TelegramBot
from bots.telegram.http import AiohttpRequest
from bots.telegram.polling import Poller, WebhookServer
from bots.telegram.send import ALLOWED_UPDATES, Pacing
from core.contract import Core
from core.media.spool import Spool

log = logging.getLogger(__name__)

STARTUP_BACKOFF = Backoff(1.0, 60.0)

Stopper = Callable[[], Awaitable[None]]
"""Stops taking updates (returned by what started taking them)."""


# --- building and running ------------------------------------------------------------------------


def build_application(
    core: Core,
    token: str,
    api_url: str = "https://api.telegram.org",
    *,
    pacing: Pacing | None = None,
    pool_size: int = 16,
    read_timeout: float = 5.0,
    spool: Spool | None = None,
) -> Application[Any, Any, Any, Any, Any, Any]:
    """A PTB Application (its bot and transport) wired to ``core``; ``api_url`` is the Bot API
    server root. It has no Updater: :func:`polling` and :func:`webhook` feed it updates.
    ``read_timeout`` (and the write timeout) is how long a call waits for the server's answer;
    received files are streamed into ``spool`` (held in memory without one)."""
    root = api_url.rstrip("/")
    bot = TelegramBot(core, pacing, spool)
    requests = AiohttpRequest(pool_size, read_timeout=read_timeout, write_timeout=read_timeout)
    polls = AiohttpRequest(1)
    app = (
        ApplicationBuilder()
        .token(token)
        .base_url(f"{root}/bot")
        .base_file_url(f"{root}/file/bot")
        .request(requests)
        .get_updates_request(polls)
        .updater(None)
        .build()
    )
    bot.install(app)
    app.bot_data["ferry"] = bot
    app.bot_data["ferry_transport"] = (requests, polls)
    return app


def connected(app: Application[Any, Any, Any, Any, Any, Any], *, polling: bool) -> bool:
    """Whether the bot is running and its last exchange with the Bot API server got through
    (long polling: the last getUpdates; a webhook: the last request the bot made)."""
    if not (app.running and app.bot_data.get("ferry_receiving")):
        return False
    requests, polls = app.bot_data["ferry_transport"]
    return bool((polls if polling else requests).reachable)


@contextlib.asynccontextmanager
async def _running(
    app: Application[Any, Any, Any, Any, Any, Any], receive: Callable[[TelegramBot], Awaitable[Stopper]]
) -> AsyncIterator[Application[Any, Any, Any, Any, Any, Any]]:
    """Run ``app`` inside the current event loop; ``receive`` starts taking updates and returns
    how to stop. Leaving waits for the answers being shown."""
    bot: TelegramBot = app.bot_data["ferry"]
    async with app:
        await bot.set_commands(app)
        await app.start()
        bot.start_recovery(app)
        await asyncio.sleep(0)  # the recovery has claimed its place: earlier runs' answers go first
        stop_receiving = await receive(bot)
        app.bot_data["ferry_receiving"] = True
        bot.start_relay(app)
        try:
            yield app
        finally:
            app.bot_data["ferry_receiving"] = False
            await stop_receiving()
            await bot.stop_recovery()
            await bot.drain()
            await bot.stop_relay()
            await app.stop()


def polling(
    app: Application[Any, Any, Any, Any, Any, Any], poll_timeout: float = 10.0
) -> contextlib.AbstractAsyncContextManager[Application[Any, Any, Any, Any, Any, Any]]:
    """Run ``app`` with long polling inside the current event loop."""

    async def start(bot: TelegramBot) -> Stopper:
        await app.bot.delete_webhook()
        _, polls = app.bot_data["ferry_transport"]
        poller = Poller(bot, polls, f"{app.bot.base_url}/getUpdates", poll_timeout)
        task = asyncio.create_task(poller.run())

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        return stop

    return _running(app, start)


def webhook_params(url: str, port: int, secret: str | None, listen: str = "0.0.0.0") -> dict[str, Any]:
    """Where the webhook server listens (``listen:port``, at ``url``'s path) and its secret.

    Without a configured secret a random one is made, so that only Telegram (which is told the
    secret by ``setWebhook``) can post updates; anyone else is answered 403.
    """
    return {
        "listen": listen,
        "port": port,
        "url_path": urlsplit(url).path.strip("/"),
        "webhook_url": url,
        "secret_token": secret or secrets.token_urlsafe(32),
    }


def webhook(
    app: Application[Any, Any, Any, Any, Any, Any], url: str, port: int, secret: str | None, listen: str = "0.0.0.0"
) -> contextlib.AbstractAsyncContextManager[Application[Any, Any, Any, Any, Any, Any]]:
    """Run ``app`` with a webhook inside the current event loop."""
    params = webhook_params(url, port, secret, listen)

    async def start(bot: TelegramBot) -> Stopper:
        server = WebhookServer(bot, params["url_path"], params["secret_token"], params["listen"], params["port"])
        await server.start()
        await app.bot.set_webhook(url, secret_token=params["secret_token"], allowed_updates=ALLOWED_UPDATES)
        return server.stop

    return _running(app, start)


async def wait_for_bot_api(root: str, token: str, backoff: Backoff = STARTUP_BACKOFF) -> None:
    """Return once the Bot API server answers ``getMe``; until then retry with backoff.

    An unreachable server is one log line (then retried), as ``ferry signal`` does for its
    service; a refused token stops with a sentence, as no retry can fix it.
    """
    from core.settings import SettingsError

    transport = AiohttpRequest(1)
    await transport.initialize()

    async def check() -> None:
        try:
            status, _ = await transport.do_request(f"{root}/bot{token}/getMe", "POST")
        except NetworkError as e:
            raise ServiceProblem(
                f"cannot reach the Telegram Bot API at {root} ({e.message}); check the network, "
                "TELEGRAM_API_URL and HTTPS_PROXY"
            ) from e
        if status in (401, 404):
            raise SettingsError("Telegram refused TELEGRAM_BOT_TOKEN; copy it again from @BotFather")

    try:
        await wait_until_ready(check, backoff, "Telegram", log)
    finally:
        await transport.shutdown()


def run(settings: Any) -> None:
    """Run the Telegram bot until interrupted: long polling, or a webhook when one is configured."""
    from core.settings import SettingsError

    os.environ.setdefault("PTB_TIMEDELTA", "1")  # opt in to PTB's future retry_after type
    if not settings.telegram_bot_token:
        raise SettingsError("TELEGRAM_BOT_TOKEN is not set; get one from @BotFather")
    event_loop.run(_serve(settings), settings.event_loop)


async def _serve(settings: Any) -> None:
    """The process: wait for the Bot API, start the core, take updates until SIGINT/SIGTERM."""
    from bots.health import serve_health
    from core.app import build_assistant

    root = settings.telegram_api_url.rstrip("/")
    await wait_for_bot_api(root, settings.telegram_bot_token)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    assistant = build_assistant(settings)
    await assistant.start()
    try:
        # Telegram's published limit is about 30 new messages a second; paid broadcasts raise it.
        pacing = Pacing(global_rate=settings.telegram_send_rate)
        app = build_application(
            assistant, settings.telegram_bot_token, settings.telegram_api_url, pacing=pacing,
            spool=Spool.of(settings.data_dir, "telegram"),
        )  # fmt: skip
        is_polling = not settings.telegram_webhook_url
        if is_polling:
            log.info("Telegram long polling via %s", settings.telegram_api_url)
            receiving = polling(app)
        else:
            listen = settings.telegram_webhook_listen
            params = webhook_params(
                settings.telegram_webhook_url, settings.telegram_webhook_port, settings.telegram_webhook_secret, listen
            )
            log.info("Telegram webhook on %s:%s at /%s", listen, params["port"], params["url_path"])
            receiving = webhook(
                app, settings.telegram_webhook_url, settings.telegram_webhook_port, params["secret_token"], listen
            )
        async with (
            serve_health(settings, assistant, "Telegram", lambda: connected(app, polling=is_polling)),
            receiving,
        ):
            await stop.wait()
            log.info("Telegram: stopping")
    finally:
        await assistant.close()
