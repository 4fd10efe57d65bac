"""A stand-in core for adapter tests: the whole :class:`core.contract.Core`, answers scripted.

Subclasses override :meth:`StandInCore.handle`. Replies of a chat are read in the order the
messages were submitted, as from the real core; each scripted event is put only once the
adapter has taken the one before (a real model takes its time), so the real core's
coalescing of partial answers does not swallow the script's steps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from core.metrics import Metrics
from core.reply import Reply
from core.types import AdminAlert, Incoming, ReplyEvent


class StandInCore:
    """Everything an adapter may use of the core; override :meth:`handle` to script answers."""

    def __init__(self) -> None:
        self._metrics = Metrics()
        self._last: dict[str, Reply] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def metrics(self) -> Metrics:
        """A registry of this stand-in's own."""
        return self._metrics

    def submit(self, msg: Incoming) -> Reply:
        """Take the message's place in its chat's line now."""
        previous = self._last.get(str(msg.chat))
        reply = _Lockstep(after=previous.read if previous is not None else None)
        self._last[str(msg.chat)] = reply
        task = asyncio.create_task(self._feed(reply, self.handle(msg)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return reply

    @staticmethod
    async def _feed(reply: _Lockstep, events: AsyncIterator[ReplyEvent]) -> None:
        try:
            async for event in events:
                reply.taken.clear()
                reply.put(event)
                taken = asyncio.ensure_future(reply.taken.wait())
                closed = asyncio.ensure_future(reply.read.wait())
                await asyncio.wait({taken, closed}, return_when=asyncio.FIRST_COMPLETED)
                taken.cancel()
                closed.cancel()
        finally:
            reply.finish()

    async def handle(self, msg: Incoming) -> AsyncIterator[ReplyEvent]:
        """The answer to one message (none by default)."""
        return
        yield

    def text(self, lang: str, key: str, **values: Any) -> str:
        """The text's key itself."""
        return key

    def language(self, language_code: str | None) -> str:
        """Always English."""
        return "en"

    def command_menu(self, lang: str) -> list[tuple[str, str]]:
        """No commands."""
        return []

    def menu_languages(self) -> tuple[str, ...]:
        """English only."""
        return ("en",)

    async def receive(self, msg: Incoming, key: str, route: Any = None) -> Reply | None:
        """Nothing is recorded: the same as :meth:`submit`."""
        return self.submit(msg)

    async def pending(self, platform: str) -> AsyncIterator[Reply]:
        """Nothing is ever left over."""
        await asyncio.Event().wait()
        yield Reply()

    async def alerts(self, platform: str) -> AsyncIterator[AdminAlert]:
        """No alerts, ever."""
        await asyncio.Event().wait()
        yield AdminAlert(to=(), text="")  # never reached

    async def ready(self) -> str | None:
        """Always ready."""
        return None

    async def start(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Stop feeding replies."""
        for task in list(self._tasks):
            task.cancel()


class _Lockstep(Reply):
    """A reply that tells its feeder when the reader has taken an event."""

    def __init__(self, after: asyncio.Event | None) -> None:
        super().__init__(after=after)
        self.taken = asyncio.Event()

    async def __anext__(self) -> ReplyEvent:
        event = await super().__anext__()
        self.taken.set()
        return event
