"""The /healthz and /metrics endpoint of a bot process (``FERRY_HEALTH_PORT``)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from core.contract import Core
from core.metrics import HealthServer
from core.settings import Settings

log = logging.getLogger(__name__)


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

    server = HealthServer(core.metrics, settings.health_port, settings.health_host)
    server.add_check(messenger, messenger_check)
    server.add_check("store", core.ready)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
