"""Recovering what signal-cli-rest-api received while no WebSocket was attached.

signal-cli-rest-api drops a message that arrives while no receive WebSocket is attached
(bbernhard/signal-cli-rest-api#834). Its *persistence plugin* keeps every message anyway:
``RECEIVE_WEBHOOK_URL`` pointed at the plugin's own endpoint inside the container makes
``ReceiveData`` (``src/client/jsonrpc2.go``) POST each ``receive`` notification there whether or
not a WebSocket is attached, and ``plugins/persistence/persist-message.lua`` stores its envelope
in sqlite; ``GET /v1/plugins/persistence/query-message`` returns every stored row
(``[{"data": envelope, "timestamp": "…"}]``, no cursor, nothing ever deleted).

After each (re)connection Ferry reads that table and hands the envelopes of the gap (and, at
start, of the last :data:`FIRST_WINDOW`) to signalbot again as frames; the core records each
message under ``signal:<sender>:<timestamp>`` and answers a key it has seen only once. Without
the plugin (404) this is a single request per process. What arrives while the service itself is
starting is not persisted either (the webhook's server is not up yet): restart order, README.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

QUERY = "/v1/plugins/persistence/query-message"
FIRST_WINDOW = 6 * 3600.0
"""Seconds back a starting process looks (well within the core's one-day memory of keys)."""
SLACK = 120.0
"""Seconds before a gap's start still looked at (clocks of phones and server differ)."""


class PersistedBacklog:
    """Fetches the persistence plugin's rows of a gap, as frames signalbot understands."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, account: str) -> None:
        self.session = session
        self.url = f"{base_url}{QUERY}"
        self.account = account
        self.available: bool | None = None
        """None until asked; False once the plugin answered 404 (not asked again)."""

    async def __call__(self, since: float | None) -> list[str]:
        """Frames of the messages persisted since ``since`` (wall clock; None: this run's start)."""
        if self.available is False:
            return []
        try:
            async with self.session.get(self.url) as resp:
                if resp.status == 404:
                    self.available = False
                    log.info(
                        "Signal: the persistence plugin is not enabled; messages arriving while the bot is "
                        "not connected cannot be recovered (README: Restarting without losing Signal messages)"
                    )
                    return []
                resp.raise_for_status()
                rows = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("Signal: could not read the persisted messages (%s)", type(exc).__name__)
            return []
        self.available = True
        start_ms = ((since - SLACK) if since is not None else time.time() - FIRST_WINDOW) * 1000
        frames = [
            json.dumps({"envelope": row["data"], "account": self.account})
            for row in rows if _envelope_time(row) >= start_ms
        ]  # fmt: skip
        if frames:
            log.info("Signal: %d message(s) from the persistence plugin to check", len(frames))
        return frames


def _envelope_time(row: Any) -> float:
    data = row.get("data") if isinstance(row, dict) else None
    stamp = data.get("timestamp") if isinstance(data, dict) else None
    return float(stamp) if isinstance(stamp, int | float) else 0.0
