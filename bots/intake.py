"""Per-chat arrival order for the one step an adapter may await before submitting a message.

The core takes a chat's place in line when :meth:`core.contract.Core.submit` is called, so an
adapter that submits at once needs no ordering of its own. Only a message that must be read
first (a document to download) could be overtaken by the chat's next message; an
:class:`Intake` ticket, taken when the message arrives, makes the next one wait to *submit*
until this one has (the downloads themselves still run side by side).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from core.reply import Reply
from core.types import Incoming


class Intake:
    """Tickets per chat, in arrival order; see :meth:`enter`."""

    def __init__(self) -> None:
        self._last: dict[str, asyncio.Future[None]] = {}

    def enter(self, chat: str) -> Ticket:
        """Take a ticket for a message of ``chat`` that has just arrived (call before any await)."""
        previous = self._last.get(chat)
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._last[chat] = mine

        def forget(_: object) -> None:
            if self._last.get(chat) is mine:
                del self._last[chat]

        mine.add_done_callback(forget)
        return Ticket(previous, mine)


class Ticket:
    """One message's turn to be submitted, after the chat's earlier messages."""

    def __init__(self, previous: asyncio.Future[None] | None, mine: asyncio.Future[None]) -> None:
        self._previous = previous
        self._mine = mine

    async def submit(
        self, read: Callable[[], Awaitable[Incoming | None]], submit: Callable[[Incoming], Reply]
    ) -> Reply | None:
        """``read()`` the message, then ``submit`` it once every earlier one of its chat was.

        None when ``read`` found nothing to submit; the next message is let through however
        this ends (read failed, task cancelled).
        """
        try:
            incoming = await read()
            if self._previous is not None:
                await asyncio.shield(self._previous)
            return submit(incoming) if incoming is not None else None
        finally:
            if not self._mine.done():
                self._mine.set_result(None)
