"""Where updates come from: Ferry's own long-polling loop, or its own webhook server.

Telegram keeps an update until it is confirmed — by a later ``getUpdates`` whose ``offset``
passes it, or by a 2xx answer to the webhook POST (https://core.telegram.org/bots/api#getupdates,
#setwebhook). python-telegram-bot's Updater confirms as soon as a batch is queued, long before
its messages are recorded, so a crash loses them; and a batch it cannot parse is fetched again
forever. Here the offset moves past an update, and the webhook answers 200, only once
:meth:`TelegramBot.take` has returned for it, that is once the core has recorded it.

A poison update is skipped by the parser (:mod:`bots.telegram.updates`), so it is confirmed
like any other. An update whose *recording* fails (the store is down) is not confirmed and
comes again; after :data:`MAX_RECORD_ATTEMPTS` failures it is given up with one log line, so
that a deterministic failure cannot make the bot deaf for everyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
from typing import Any

from aiohttp import web
from telegram.error import Conflict, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.request import BaseRequest, RequestData
from telegram.request._requestparameter import RequestParameter

from bots.logs import Throttled
from bots.services import Backoff
from bots.telegram.handlers import TelegramBot
from bots.telegram.send import ALLOWED_UPDATES
from bots.telegram.updates import update_id_of

log = logging.getLogger(__name__)

MAX_RECORD_ATTEMPTS = 5
"""Times one update's recording may fail before it is given up (and confirmed) anyway."""

POLL_BACKOFF = Backoff(0.5, 15.0)

REPOLL = 0.01
"""Seconds between ``getUpdates`` calls while only updates being taken come back (Telegram answers
at once while any update above the offset is unconfirmed). A new update waits for the next call:
with 0.05, twenty chats sending PDFs (a take in flight nearly always) waited 15-30 ms median and
up to 0.2-0.4 s for it, the largest part of the time to the thinking draft; with 0.01 the bot's
CPU per message stayed the same (46-52 ms vs 52-57), a take ending still polls at once."""


class Poller:
    """Long polling with the offset as the only acknowledgement, moved once an update is recorded.

    Updates are taken as they come, not batch by batch: the next ``getUpdates`` does not wait
    until every update of the last one is recorded (a document's download held every other chat's
    message back). The offset still moves only over updates that are recorded, so Telegram keeps
    sending the ones being taken; they are known by id and not taken twice, and while only they
    come back the loop waits for one to finish (or :data:`REPOLL` seconds) instead of spinning.
    """

    def __init__(self, bot: TelegramBot, transport: BaseRequest, url: str, timeout: float = 10.0) -> None:
        self.bot = bot
        self.transport = transport
        self.url = url
        self.timeout = timeout
        self.offset = 0
        self.running = False
        self._failures: dict[int, int] = {}
        self._throttled = Throttled(log, interval=60.0)
        self._taking: dict[int, asyncio.Task[None]] = {}  # update id -> its take, until it ends
        self._done: set[int] = set()  # recorded (or given up) at or above the offset
        self._failed: set[int] = set()  # not recorded: taken again when it comes again
        self._changed = asyncio.Event()  # a take ended

    async def fetch(self) -> list[Any]:
        """One ``getUpdates`` call, its result as raw dicts (parsed one by one later)."""
        params = {"offset": self.offset, "timeout": int(self.timeout), "allowed_updates": ALLOWED_UPDATES}
        data = RequestData([RequestParameter.from_input(k, v) for k, v in params.items()])
        result = await self.transport.post(self.url, data, read_timeout=self.timeout + 10)
        return result if isinstance(result, list) else []

    async def run(self) -> None:
        """Poll until cancelled (the updates being taken then are cancelled too: they come again)."""
        self.running = True
        delays = POLL_BACKOFF.delays()
        try:
            while True:
                try:
                    batch = await self.fetch()
                except RetryAfter as exc:
                    await asyncio.sleep(_seconds(exc.retry_after))
                    continue
                except (Conflict, InvalidToken, NetworkError, TelegramError) as exc:
                    delay = await anext(delays)
                    self._throttled(
                        logging.WARNING, f"poll-{type(exc).__name__}",
                        "Telegram: getUpdates failed (%s: %s); retrying in %.1fs",
                        type(exc).__name__, exc.message, delay,
                    )  # fmt: skip
                    await asyncio.sleep(delay)
                    continue
                delays = POLL_BACKOFF.delays()
                self._throttled.reset("poll-NetworkError")
                if not self.take_new(batch) and self._taking:
                    self._changed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), REPOLL)
        finally:
            self.running = False
            taking = list(self._taking.values())
            for task in taking:
                task.cancel()
            await asyncio.gather(*taking, return_exceptions=True)

    def take_new(self, batch: list[Any]) -> int:
        """Start taking the updates of ``batch`` not taken yet (in order: each chat's stay in
        order); how many were new."""
        started = 0
        for raw in batch:
            uid = update_id_of(raw)
            if uid is None or uid < self.offset or uid in self._taking or uid in self._done:
                continue
            self._failed.discard(uid)
            task = asyncio.create_task(self.bot.take(raw))
            self._taking[uid] = task
            task.add_done_callback(functools.partial(self._took, uid))
            started += 1
        return started

    def _took(self, uid: int, task: asyncio.Task[None]) -> None:
        self._taking.pop(uid, None)
        self._changed.set()
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None or self._give_up(uid, exc):
            self._done.add(uid)
        else:
            self._failed.add(uid)  # not recorded: the offset stays below it, it comes again
        waiting = set(self._taking) | self._failed
        floor = min(waiting) if waiting else None  # once, not once per recorded update
        below = [u for u in self._done if floor is None or u < floor]
        if below:
            self.offset = max(self.offset, max(below) + 1)
            self._done = {u for u in self._done if u >= self.offset}

    def _give_up(self, uid: int, exc: BaseException) -> bool:
        attempts = self._failures[uid] = self._failures.get(uid, 0) + 1
        if attempts < MAX_RECORD_ATTEMPTS:
            self._throttled(
                logging.ERROR, "record", "Telegram: could not record update %s (%s); it will come again",
                uid, type(exc).__name__,
            )  # fmt: skip
            return False
        del self._failures[uid]
        log.error("Telegram: gave up update %s after %d failed attempts (%s)", uid, attempts, type(exc).__name__)
        return True


def _kind(exc: BaseException) -> str:
    return type(exc).__name__


def _seconds(value: Any) -> float:
    return float(value.total_seconds()) if hasattr(value, "total_seconds") else float(value)


class WebhookServer:
    """An HTTP server for Telegram's webhook POSTs: 200 once an update is recorded.

    Anyone may reach the port, so the ``X-Telegram-Bot-Api-Secret-Token`` header must match the
    secret given to ``setWebhook`` (403 otherwise). A body that is not an update is answered 200
    (Telegram would only send it again) with one log line that carries no content; an update
    whose recording failed is answered 500, so Telegram delivers it again.
    """

    def __init__(self, bot: TelegramBot, path: str, secret: str, listen: str, port: int) -> None:
        self.bot = bot
        self.path = "/" + path.strip("/")
        self.secret = secret
        self.listen = listen
        self.port = port
        self._runner: web.AppRunner | None = None
        self._throttled = Throttled(log, interval=10.0)

    async def handle(self, request: web.Request) -> web.Response:
        """One POST from Telegram."""
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            return web.Response(status=403)
        try:
            raw = json.loads(await request.read())
        except ValueError as exc:
            self._throttled(logging.WARNING, "body", "Telegram webhook: a body that is not JSON (%s)", _kind(exc))
            return web.Response(status=200)
        try:
            await self.bot.take(raw)
        except Exception as exc:
            self._throttled(
                logging.ERROR, "record", "Telegram webhook: could not record update %s (%s); it will come again",
                update_id_of(raw), _kind(exc),
            )  # fmt: skip
            return web.Response(status=500)
        return web.Response(status=200)

    async def start(self) -> None:
        """Listen on ``listen:port``."""
        app = web.Application()
        app.router.add_post(self.path, self.handle)
        self._runner = web.AppRunner(app, access_log=None)  # an access log would name every POST
        await self._runner.setup()
        await web.TCPSite(self._runner, self.listen, self.port).start()

    async def stop(self) -> None:
        """Stop listening (requests in progress finish first)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
