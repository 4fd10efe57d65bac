"""Per-chat arrival order for the one step an adapter may await before submitting a message.

The core takes a chat's place in line when :meth:`core.contract.Core.submit` is called, so an
adapter that submits at once needs no ordering of its own. Only a message that must be read
first (a document to download) could be overtaken by the chat's next message; an
:class:`Intake` ticket, taken when the message arrives, makes the next one wait to *submit*
until this one has (the downloads themselves still run side by side).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from core.contract import Core
from core.reply import Reply
from core.types import Incoming

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def cleaned(value: Any) -> Any:
    """``value`` (decoded JSON) with every lone surrogate in its strings replaced by U+FFFD.

    JSON carries ``"\\ud83d"`` and Python holds it, but no encoder accepts it, and the messenger
    libraries' parsers (PTB's entity offsets, signalbot's pydantic models) fail on it. U+FFFD is
    one UTF-16 unit for one, so entity offsets still fit.
    """
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value) if _LONE_SURROGATE.search(value) else value
    if isinstance(value, dict):
        return {k: cleaned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [cleaned(v) for v in value]
    return value


class Receiver(Protocol):
    """How an adapter hands over a message: returns once it is recorded, with its reply.

    ``key`` names the upstream delivery (``telegram:<update_id>``, ``signal:<sender>:<timestamp>``)
    so that a delivery seen twice (the bot died before confirming it) is answered once: ``None``
    is returned for a key already recorded. ``route`` is JSON the adapter gets back with the reply
    (``reply.route``) to deliver it after a restart.
    """

    async def __call__(self, msg: Incoming, key: str, route: dict[str, Any]) -> Reply | None:
        """Record ``msg`` under ``key`` and return its reply (None: already recorded)."""
        ...


def receiver_for(core: Core) -> Receiver:
    """The core's durable intake (:meth:`core.contract.Core.receive`)."""

    async def record(msg: Incoming, key: str, route: dict[str, Any]) -> Reply | None:
        return await core.receive(msg, key, route)

    return record


def pending_replies(core: Core, platform: str) -> AsyncIterator[Reply]:
    """Answers an earlier run recorded but did not deliver, then ones handed over again."""
    return core.pending(platform)


def route_of(reply: Reply) -> dict[str, Any]:
    """The route the adapter gave with the message (empty for a submitted one)."""
    return dict(reply.route)


def previous_ref(reply: Reply) -> str | None:
    """A message an earlier run left visible for this answer (a stub to edit), if any."""
    return reply.previous_ref


async def mark_shown(reply: Reply, ref: str) -> None:
    """Record durably that the answer is (partly) visible as the messenger's message ``ref``."""
    await reply.shown(ref)


async def mark_delivered(reply: Reply, ref: str | None = None) -> None:
    """Record durably that the person has the whole answer: it is never handed over again."""
    await reply.delivered(ref)


SENDING = "sending"
"""The ref marked just before a final answer is sent as a new message that no edit can replace
(a Telegram private chat): after a restart the answer is taken as delivered rather than sent twice
(the request went out; as with a send that timed out, it most likely arrived)."""


def resume_of(reply: Reply) -> int | None:
    """The messenger's message id an earlier run left showing this answer (a stub to edit), if any."""
    earlier = previous_ref(reply)
    return int(earlier) if earlier and earlier.lstrip("-").isdigit() else None


Marker = Callable[[str], Awaitable[None]]
"""Records durably which messenger message shows an answer (:func:`mark_shown` for one reply)."""

Show = Callable[[Reply, Marker, "int | None"], Awaitable[None]]
"""An adapter rendering one reply's events: given the reply, its :data:`Marker` and the stub an
earlier run left (:func:`resume_of`); it never raises but for a cancel."""


async def deliver(reply: Reply, show: Show) -> None:
    """Show one reply, start to end, then mark it delivered; an answer whose final send had
    started is taken as delivered without being shown again."""
    async with reply:
        if previous_ref(reply) == SENDING:
            await mark_delivered(reply)
            return
        await show(reply, functools.partial(mark_shown, reply), resume_of(reply))
        await mark_delivered(reply)


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
        self,
        read: Callable[[], Awaitable[Incoming | None]],
        submit: Callable[[Incoming], Reply | Awaitable[Reply | None] | None],
    ) -> Reply | None:
        """``read()`` the message, then ``submit`` it once every earlier one of its chat was.

        ``submit`` may be a coroutine (a durable record): the chat's next message waits until it
        has returned. None when ``read`` found nothing to submit; the next message is let through
        however this ends (read failed, task cancelled).
        """
        try:
            incoming = await read()
            if self._previous is not None:
                await asyncio.shield(self._previous)
            if incoming is None:
                return None
            reply = submit(incoming)
            return await reply if inspect.isawaitable(reply) else reply
        finally:
            if not self._mine.done():
                self._mine.set_result(None)
