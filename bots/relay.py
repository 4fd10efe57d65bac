"""The alert relay: alerts the other messenger's process left for people on this one.

An access request made on Telegram may be for an admin who is on Signal; the core keeps such
alerts and hands them to the process of the right messenger, which delivers them here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from core.types import AdminAlert

log = logging.getLogger(__name__)


class AlertRelay:
    """Delivers each alert of ``alerts`` with ``send`` in a background task until stopped."""

    def __init__(self, send: Callable[[AdminAlert], Awaitable[None]], name: str) -> None:
        self._send = send
        self._name = name
        self._task: asyncio.Task[None] | None = None

    def start(self, alerts: AsyncIterator[AdminAlert]) -> None:
        """Begin relaying (once; a second call while running does nothing)."""
        if self._task is None:
            self._task = asyncio.create_task(self._relay(alerts))

    async def stop(self) -> None:
        """Stop relaying and wait until the task has ended."""
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _relay(self, alerts: AsyncIterator[AdminAlert]) -> None:
        async for alert in alerts:
            try:
                await self._send(alert)
            except Exception:  # one undeliverable alert must not end the relay
                log.exception("%s: could not deliver an alert from the other messenger", self._name)
