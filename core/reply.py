"""The answer to one submitted message: events the core puts, read by the adapter at its own pace.

The core never waits for the reader: events are buffered, and consecutive :class:`PartialAnswer`
values are coalesced (each carries the whole answer so far), so a slow reader costs no memory per
token. Replies of one chat are read in the order their messages were submitted: a reply's first
event is released once the previous reply of the same chat has been read to its end or closed.
So an adapter renders each reply it gets, start to end, and needs no ordering of its own; a reply
dropped unread (garbage-collected) releases the next one too.

A reply to a message the adapter gave to :meth:`core.contract.Core.receive` (or one the core
hands over again with ``pending``) carries what delivering it exactly once needs: the message
(``incoming``) and the adapter's ``route``, a stub an earlier run left visible (``previous_ref``),
and the durable marks :meth:`Reply.shown` and :meth:`Reply.delivered`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from core.types import Incoming, PartialAnswer, ReplyEvent

if TYPE_CHECKING:
    from core.intake import Receipt


class Reply:
    """An async iterator over the events of one answer; use ``async with`` so it is always closed."""

    def __init__(
        self,
        after: asyncio.Event | None = None,
        on_read: Callable[[asyncio.Event], None] | None = None,
        receipt: Receipt | None = None,
    ) -> None:
        self.receipt = receipt
        self._after = after  # set when the chat's previous reply has been read
        self._on_read = on_read
        self._events: deque[ReplyEvent] = deque()
        self._wake = asyncio.Event()
        self._finished = asyncio.Event()
        self._closed = False
        self._read = asyncio.Event()

    # --- the core's side ----------------------------------------------------------------------

    def put(self, event: ReplyEvent) -> None:
        """Add an event; a partial answer replaces one the reader has not taken yet."""
        if self._closed:
            return
        if isinstance(event, PartialAnswer) and self._events and isinstance(self._events[-1], PartialAnswer):
            self._events[-1] = event
        else:
            self._events.append(event)
        self._wake.set()

    def finish(self) -> None:
        """The core has put its last event."""
        self._finished.set()
        self._wake.set()

    async def done(self) -> None:
        """Wait until the core is done with the message (its answer is stored, if it has one)."""
        await self._finished.wait()

    # --- delivery (replies of received messages) ---------------------------------------------

    @property
    def key(self) -> str | None:
        """The messenger's key of the message this answers (None for a submitted one)."""
        return self.receipt.key if self.receipt else None

    @property
    def incoming(self) -> Incoming | None:
        """The message this answers, as recorded: where to deliver (its chat, its message id)."""
        return self.receipt.incoming if self.receipt else None

    @property
    def route(self) -> dict[str, Any]:
        """The delivery details the adapter gave with the message (empty when none)."""
        return self.receipt.route if self.receipt else {}

    @property
    def recovered(self) -> bool:
        """Handed over after a restart or a failed delivery, not straight from ``receive``."""
        return self.receipt.recovered if self.receipt else False

    @property
    def previous_ref(self) -> str | None:
        """A message already visible for this answer (a stub): edit it into the answer, send nothing new."""
        return self.receipt.previous_ref if self.receipt else None

    async def shown(self, ref: str) -> None:
        """Record (durably) that part of the answer is visible as the messenger's message ``ref``."""
        if self.receipt is not None:
            await self.receipt.shown(ref)

    async def delivered(self, ref: str | None = None) -> None:
        """Record (durably) that the person has the whole answer; it is never handed over again."""
        if self.receipt is not None:
            await self.receipt.delivered(ref)

    # --- the reader's side --------------------------------------------------------------------

    def __aiter__(self) -> Reply:
        return self

    async def __anext__(self) -> ReplyEvent:
        if self._after is not None:
            await self._after.wait()
            self._after = None
        while not self._events:
            if self._finished.is_set() or self._closed:
                self._mark_read()
                raise StopAsyncIteration
            self._wake.clear()
            await self._wake.wait()
        return self._events.popleft()

    async def aclose(self) -> None:
        """Stop reading: later events are dropped, and the chat's next reply may be read.

        A received message's answer closed without :meth:`delivered` is handed over again later.
        """
        if self.receipt is not None and not self._closed:
            self.receipt.left_undelivered()
        self._closed = True
        self._events.clear()
        self._wake.set()
        self._mark_read()

    def close_unread(self) -> None:
        """The core's side of :meth:`aclose`, for a reply it never hands out: the chat's next may be read."""
        self._closed = True
        self._events.clear()
        self._wake.set()
        self._mark_read()

    async def __aenter__(self) -> Reply:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    @property
    def read(self) -> asyncio.Event:
        """Set once this reply has been read to its end, closed, or dropped unread."""
        return self._read

    def _mark_read(self) -> None:
        if not self._read.is_set():
            self._read.set()
            if self._on_read is not None:
                self._on_read(self._read)

    def __del__(self) -> None:
        # An adapter that drops a reply without reading or closing it must not hold up its chat.
        with contextlib.suppress(RuntimeError):  # the event loop may be gone at exit
            self._mark_read()


def ready_reply(*events: ReplyEvent) -> Reply:
    """A reply that is complete already (a message the core answers without taking a place in line)."""
    reply = Reply()
    for event in events:
        reply.put(event)
    reply.finish()
    return reply
