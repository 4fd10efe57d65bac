"""The Telegram bot process (``ferry telegram``): python-telegram-bot wired to the core.

It turns each update into one :class:`~core.types.Incoming`, feeds it to
``Assistant.handle`` and renders the reply events Telegram's way:

* private chats stream through ``sendMessageDraft`` and finish with one ``sendMessage``;
* groups get a placeholder that is edited at most about once a second;
* flood control (``retry_after``) pauses the chat's previews and delays, never drops or
  repeats, the final text; a refused HTML part is sent again as plain text;
* long answers are split by :mod:`bots.telegram.render` without breaking code blocks.

The handlers live in :mod:`bots.telegram.handlers`; this module builds the application and
runs it (long polling or a webhook).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from telegram.error import NetworkError
from telegram.ext import Application, ApplicationBuilder, Updater

from bots.services import Backoff, ServiceProblem, wait_until_ready
from bots.telegram.handlers import TelegramBot
from bots.telegram.http import AiohttpRequest
from bots.telegram.send import ALLOWED_UPDATES, Pacing
from core.contract import Core
from core.settings import Settings

log = logging.getLogger(__name__)

STARTUP_BACKOFF = Backoff(1.0, 60.0)


# --- building and running ------------------------------------------------------------------------


def build_application(
    core: Core,
    token: str,
    api_url: str = "https://api.telegram.org",
    *,
    pacing: Pacing | None = None,
    concurrency: int = 4096,
    pool_size: int = 16,
    manage_assistant: bool = False,
) -> Application[Any, Any, Any, Any, Any, Any]:
    """A PTB Application wired to ``core``; ``api_url`` is the Bot API server root.

    With ``manage_assistant`` the application starts the core (``await core.start()``)
    before polling and closes it after shutdown, as ``run_polling``/``run_webhook`` need.
    """
    root = api_url.rstrip("/")
    bot = TelegramBot(core, pacing)

    async def post_init(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        if manage_assistant:
            await core.start()
        await bot.set_commands(app)
        bot.start_relay(app)

    async def post_shutdown(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        await bot.stop_relay()
        if manage_assistant:
            await core.close()

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
async def _running(
    app: Application[Any, Any, Any, Any, Any, Any], start_updates: Callable[[Updater], Awaitable[Any]]
) -> AsyncIterator[Application[Any, Any, Any, Any, Any, Any]]:
    """Run ``app`` inside the current event loop, its updates fetched by ``start_updates``."""
    async with app:
        bot: TelegramBot = app.bot_data["ferry"]
        await bot.set_commands(app)
        await app.start()
        assert app.updater is not None
        await start_updates(app.updater)
        bot.start_relay(app)
        try:
            yield app
        finally:
            await bot.stop_relay()
            await app.updater.stop()
            await app.stop()


def polling(
    app: Application[Any, Any, Any, Any, Any, Any], poll_timeout: float = 10.0
) -> contextlib.AbstractAsyncContextManager[Application[Any, Any, Any, Any, Any, Any]]:
    """Run ``app`` with long polling inside the current event loop (tests, benchmarks)."""

    async def start(updater: Updater) -> Any:
        return await updater.start_polling(timeout=int(poll_timeout), allowed_updates=ALLOWED_UPDATES)

    return _running(app, start)


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


def webhook(
    app: Application[Any, Any, Any, Any, Any, Any], url: str, port: int, secret: str | None, listen: str = "0.0.0.0"
) -> contextlib.AbstractAsyncContextManager[Application[Any, Any, Any, Any, Any, Any]]:
    """Run ``app`` with a webhook inside the current event loop (tests); ``run`` uses ``run_webhook``."""

    async def start(updater: Updater) -> Any:
        return await updater.start_webhook(**webhook_params(url, port, secret, listen), allowed_updates=ALLOWED_UPDATES)

    return _running(app, start)


def _serve_health_with(app: Application[Any, Any, Any, Any, Any, Any], settings: Settings, core: Core) -> None:
    """Serve /healthz and /metrics for as long as PTB runs ``app`` (it owns the event loop)."""
    from bots.health import serve_health

    stack = contextlib.AsyncExitStack()
    started, stopped = app.post_init, app.post_shutdown

    def is_connected() -> bool:
        return connected(app, polling=not settings.telegram_webhook_url)

    async def post_init(a: Application[Any, Any, Any, Any, Any, Any]) -> None:
        if started is not None:
            await started(a)
        await stack.enter_async_context(serve_health(settings, core, "Telegram", is_connected))

    async def post_shutdown(a: Application[Any, Any, Any, Any, Any, Any]) -> None:
        await stack.aclose()
        if stopped is not None:
            await stopped(a)

    app.post_init = post_init
    app.post_shutdown = post_shutdown


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
    from core.app import build_assistant
    from core.settings import SettingsError

    os.environ.setdefault("PTB_TIMEDELTA", "1")  # opt in to PTB's future retry_after type
    if not settings.telegram_bot_token:
        raise SettingsError("TELEGRAM_BOT_TOKEN is not set; get one from @BotFather")
    root = settings.telegram_api_url.rstrip("/")
    asyncio.run(wait_for_bot_api(root, settings.telegram_bot_token))
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
