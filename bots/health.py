"""The /healthz and /metrics endpoint of a bot process (``FERRY_HEALTH_PORT``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from core.contract import Core
from core.metrics import HealthServer
from core.settings import Settings

log = logging.getLogger(__name__)

STORE_CHECK_SECONDS = 3.0


@contextlib.asynccontextmanager
async def serve_health(
    settings: Settings, core: Core, messenger: str, connected: Callable[[], bool]
) -> AsyncIterator[HealthServer | None]:
    """Serve health while the block runs: ready when ``connected()`` and the store answers."""
    if not settings.health_port:
        yield None
        return

    async def messenger_check() -> str | None:
        return None if connected() else f"not connected to {messenger}"

    async def store_check() -> str | None:
        try:
            # Bounded: an unreachable database (PostgreSQL) must say "not ready", not hang the probe.
            return await asyncio.wait_for(core.ready(), STORE_CHECK_SECONDS)
        except TimeoutError:
            return f"the store did not answer within {STORE_CHECK_SECONDS:g} s"

    server = HealthServer(core.metrics, settings.health_port, settings.health_host)
    server.add_check(messenger, messenger_check)
    server.add_check("store", store_check)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
