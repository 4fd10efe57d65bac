"""Pacing what goes to Telegram: per-chat flood-control gates, one edit pace per chat, and the
global limit on new messages. Shared by every answer the process shows (see ``send.Sender``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class FloodGate:
    """Per-chat flood-control gate: nothing is sent to the chat before ``until``."""

    until: dict[int, float] = field(default_factory=dict)
    on_flood: Callable[[float], None] | None = None  # counts flood-control waits (metrics)

    def wait_time(self, chat_id: int) -> float:
        return max(0.0, self.until.get(chat_id, 0.0) - time.monotonic())

    def close_for(self, chat_id: int, seconds: float) -> None:
        if self.on_flood is not None:
            self.on_flood(seconds)
        self.until[chat_id] = max(self.until.get(chat_id, 0.0), time.monotonic() + seconds)
        if len(self.until) > 10_000:  # forget gates that opened long ago
            now = time.monotonic()
            self.until = {k: v for k, v in self.until.items() if v > now}


@dataclass
class ChatPacer:
    """One pace per chat for edits, shared by every answer in it.

    Each showing reserves the next free slot (``reserve``), so two answers in one group edit
    one after the other, ``interval`` apart; a message the bot sends there (a placeholder, a
    final text) counts too (``wrote``) and pushes the next edit out.
    """

    interval: float
    next_at: dict[int, float] = field(default_factory=dict)

    def reserve(self, chat_id: int) -> float:
        """Seconds to wait before this chat's next edit; the slot is taken."""
        now = time.monotonic()
        slot = max(now, self.next_at.get(chat_id, 0.0))
        self.next_at[chat_id] = slot + self.interval
        if len(self.next_at) > 10_000:  # forget chats whose pace is long over
            self.next_at = {k: v for k, v in self.next_at.items() if v > now}
        return slot - now

    def wrote(self, chat_id: int) -> None:
        """The bot just put a message into the chat: the next edit waits a full interval."""
        self.next_at[chat_id] = max(self.next_at.get(chat_id, 0.0), time.monotonic() + self.interval)


class SendLimiter:
    """At most ``rate`` new messages in any one second over all chats (Telegram's global limit).

    A sliding window, as Telegram counts ("not more than 30 messages per second"; the fake's
    ``RateLimits`` keeps the same window, at each request's arrival): a burst of up to ``rate``
    messages goes out at once, the next waits until one of them is a second old, counted from
    when its request was answered. Counting from when a request was sent is not safe: the server
    counts it when it arrives, which may be any time until its answer, so a message sent a second
    after a slow one can arrive less than a second after it (the 31st in a second: a 429 that
    holds the chat for ``retry_after``, a second at least, far longer than the wait it saved).
    For the same reason a request still in flight counts however old it is.
    Spacing every message ``1/rate`` apart instead made the twentieth of twenty chats answered
    together wait 0.6 s with no limit near.
    Like PTB's ``AIORateLimiter`` ``overall_max_rate``, but only for ``sendMessage``: that one
    halts *every* request on any ``RetryAfter`` (one group's flood control would stall every
    private chat) and throttles drafts and typing too; per-chat flood control stays with
    :class:`FloodGate`.
    """

    WINDOW = 1.0

    def __init__(self, rate: float) -> None:
        # A fractional rate (0.5: one message every 2 s) is kept as one message per 1/rate s.
        self._count = max(1, int(rate)) if rate > 0 else 0
        self._window = self.WINDOW * self._count / rate if rate > 0 else 0.0
        # When each send in the window was answered, oldest first (monotonic times, appended in
        # order): the old ones leave from the left, so a check costs nothing per message in the
        # window (at a raised rate a list comprehension over it was a percent of the bot's CPU).
        self._answered: deque[float] = deque()
        self._flying = 0  # sends not answered yet: each counts until it is
        self._landed = asyncio.Event()  # a send in flight was answered
        self._turn = asyncio.Lock()  # waiting senders go in call order

    @property
    def crowded(self) -> bool:
        """Whether a message sent now would wait: others are waiting already, or the window is full."""
        if not self._count:
            return False
        if self._turn.locked():
            return True
        self._forget_old(time.monotonic())
        return len(self._answered) + self._flying >= self._count

    def _forget_old(self, now: float) -> None:
        answered = self._answered
        while answered and answered[0] <= now - self._window:
            answered.popleft()

    @contextlib.asynccontextmanager
    async def slot(self, while_waiting: Callable[[], Awaitable[None]] | None = None) -> AsyncIterator[None]:
        """Wait for room in the window, then send inside the ``async with``.

        ``while_waiting`` is started when the message has to wait (a draft of it, which the limit
        does not count) and is finished before the message goes, so it never lands after it.
        """
        if not self._count:
            yield
            return
        shown = asyncio.ensure_future(while_waiting()) if while_waiting is not None and self.crowded else None
        async with self._turn:
            while True:
                now = time.monotonic()
                self._forget_old(now)
                if len(self._answered) + self._flying < self._count:
                    break
                if self._answered:
                    await asyncio.sleep(max(self._answered[0] + self._window - now, 0.001))
                else:  # every send in the window is in flight: the first answer starts its second
                    self._landed.clear()
                    await self._landed.wait()
            self._flying += 1
        try:
            if shown is not None:
                await shown
            yield
        finally:
            self._flying -= 1
            self._answered.append(time.monotonic())
            self._landed.set()
