"""Checks of the services the messengers run on, shared by the bots and ``ferry doctor``.

The bot process and ``ferry doctor`` must agree on what a good setting is: both read
``SIGNAL_SERVICE`` through :func:`signal_base_url` and check the service with
:func:`check_signal_service`, and both retry with the same :class:`Backoff`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from packaging.version import InvalidVersion, Version

log = logging.getLogger(__name__)


def min_signal_cli_rest_api() -> Version:
    """The oldest signal-cli-rest-api Ferry works with. signalbot (200 modules, 14 MB) is imported
    only here, so the Telegram process, which shares this module, never loads it."""
    from signalbot import MIN_SIGNAL_CLI_REST_API_VERSION

    return max(Version("0.96"), MIN_SIGNAL_CLI_REST_API_VERSION)
"""What signalbot needs (0.101), and at least 0.96: escapes and nested styles in styled text."""


@dataclass(frozen=True)
class Backoff:
    """Exponential retry delays: ``first``, doubling up to ``most`` seconds."""

    first: float = 1.0
    most: float = 60.0

    def delays(self) -> AsyncIterator[float]:
        """An endless stream of delays, each twice the last, capped at ``most``."""
        return _delays(self.first, self.most)


async def _delays(first: float, most: float) -> AsyncIterator[float]:
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, most)


class ServiceProblem(Exception):
    """A service is unreachable or not set up for Ferry; the message says what to do."""


async def wait_until_ready(
    check: Callable[[], Awaitable[None]], backoff: Backoff, name: str, logger: logging.Logger = log
) -> None:
    """Run ``check`` until it stops raising :class:`ServiceProblem`, with backoff between tries.

    One log line per distinct problem (not one per retry), and one when it is solved.
    """
    last = ""
    async for delay in backoff.delays():
        try:
            await check()
        except ServiceProblem as problem:
            message = str(problem)
            if message != last:
                logger.error("%s: %s (retrying with backoff)", name, message)
                last = message
            else:
                logger.debug("%s: still waiting (%s); next try in %.1fs", name, message, delay)
            await asyncio.sleep(delay)
            continue
        if last:
            logger.info("%s: ready now", name)
        return


def signal_base_url(service: str, *, https: bool = False) -> str:
    """The root URL of signal-cli-rest-api for ``SIGNAL_SERVICE``.

    ``host:port`` is the documented form; a value with a scheme (``http://host:port``) is
    accepted too, by the bot and by ``ferry doctor`` alike.
    """
    service = service.strip().rstrip("/")
    if "://" in service:
        return service
    return f"{'https' if https else 'http'}://{service}"


def signal_host_port(service: str) -> str:
    """``SIGNAL_SERVICE`` without a scheme: the form signalbot's own configuration takes."""
    service = service.strip().rstrip("/")
    return service.split("://", 1)[1] if "://" in service else service


async def check_signal_service(http: aiohttp.ClientSession, base: str, phone_number: str | None) -> str:
    """Raise :class:`ServiceProblem` unless signal-cli-rest-api at ``base`` is usable.

    Usable: healthy, in json-rpc mode, new enough, and with ``phone_number`` registered or
    linked. Returns the service's version.
    """
    try:
        async with http.get(f"{base}/v1/health") as resp:
            if resp.status != 204:
                raise ServiceProblem(
                    f"signal-cli-rest-api at {base} is not healthy (GET /v1/health answered "
                    f"{resp.status}); check the signal-api container's log"
                )
        async with http.get(f"{base}/v1/about") as resp:
            about = await resp.json(content_type=None)
        async with http.get(f"{base}/v1/accounts") as resp:
            accounts = await resp.json(content_type=None) if resp.status == 200 else []
    except (aiohttp.ClientError, TimeoutError, ValueError) as e:
        raise ServiceProblem(
            f"cannot reach signal-cli-rest-api at {base} ({e.__class__.__name__}: {e}); "
            "is the container running and SIGNAL_SERVICE (host:port) right?"
        ) from e
    mode = str(about.get("mode")) if isinstance(about, dict) else "?"
    version = str(about.get("version")) if isinstance(about, dict) else "?"
    if mode != "json-rpc":
        raise ServiceProblem(
            f"signal-cli-rest-api at {base} runs in mode '{mode}', but Ferry needs MODE=json-rpc: "
            "set MODE=json-rpc in the signal-api container's environment and restart it"
        )
    _check_version(base, version)
    if not phone_number:
        raise ServiceProblem("SIGNAL_PHONE_NUMBER is empty: set it to the bot's number, +countrycode…")
    if not isinstance(accounts, list) or phone_number not in accounts:
        raise ServiceProblem(
            f"the number {phone_number} is not registered with signal-cli-rest-api at {base}: "
            f"link it by opening {base}/v1/qrcodelink?device_name=ferry and scanning the QR code in "
            f"Signal (Settings > Linked devices), or register it with POST /v1/register/{phone_number}; "
            "check SIGNAL_PHONE_NUMBER"
        )
    return version


def _check_version(base: str, version: str) -> None:
    if version == "unset":  # a build from source: nothing to compare
        return
    least = min_signal_cli_rest_api()
    try:
        too_old = Version(version) < least
    except InvalidVersion:
        return
    if too_old:
        raise ServiceProblem(
            f"signal-cli-rest-api at {base} is version {version}; Ferry needs "
            f"{least} or newer: pull a newer bbernhard/signal-cli-rest-api"
        )
