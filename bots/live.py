"""Machinery both messengers use while an answer is being written.

* :class:`TypingLoop` keeps a typing indicator up (messengers drop one after a few seconds);
* :class:`Throttle` shows the newest text of a streaming answer at most once per interval,
  skipping the versions in between, and never after it was closed.

Both are given methods of the reply view that owns them, and the view keeps them: a reference
cycle, one an answer, that only Python's cycle collector could free. Each answer's view, its
preview and typing state, and the update, reply and intake record behind it outlived the answer
until a collection found them (``bench/telegram_bench.py``, 400 answers: 15,281 objects left in
cycles; the Signal bench, 200: 15,457 with the Markdown trees, ``bots/rendering/markdown.py``).
So a typing loop holds its owner's method weakly, and a closed throttle lets go of its callbacks:
the view is freed by reference counting as soon as its answer is shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import weakref
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class TypingLoop:
    """Calls ``send_typing`` every ``interval`` seconds from :meth:`start` until :meth:`stop`.

    ``send_typing`` handles its own errors (a typing indicator is decoration). ``stop`` lets
    an indicator in flight finish, so it cannot land after the answer. A method is held weakly:
    its object (the reply view that owns this loop) must outlive it, or the typing stops.
    """

    def __init__(self, send_typing: Callable[[], Awaitable[None]], interval: float) -> None:
        # A method of the view that owns this loop: held weakly, or the two would form a cycle.
        self._send = weakref.WeakMethod(send_typing) if inspect.ismethod(send_typing) else lambda: send_typing
        self._interval = interval
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether the loop was started and not stopped yet."""
        return self._task is not None

    def start(self) -> None:
        """Start typing (once)."""
        if self._task is None:
            self._stop = asyncio.Event()
            self._task = asyncio.create_task(self._loop(self._stop))

    def halt(self) -> None:
        """Send no further indicator (without waiting); :meth:`stop` still has to be awaited."""
        self._stop.set()

    async def stop(self) -> bool:
        """Stop typing; True if it was running."""
        if self._task is None:
            return False
        task, self._task = self._task, None
        self._stop.set()
        try:
            await task
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("typing loop failed")
        return True

    def cancel(self) -> None:
        """Abandon the loop at once (the answer was cancelled)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            send = self._send()
            if send is None:  # its owner is gone
                return
            await send()
            del send
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)


class Throttle:
    """Shows the latest text with ``show`` at most once per ``interval`` seconds.

    ``interval`` may be a function, asked after each showing (a pace that widens as an answer
    grows). ``delay()`` is asked before each showing for extra seconds to wait (flood control);
    ``show`` raising :class:`RetryLater` keeps the text pending for the next round, any
    other exception skips this version (previews are best effort). The first text waits
    ``settle`` seconds: an answer that is whole by then (:meth:`end`) shows no preview at all.
    """

    def __init__(
        self,
        show: Callable[[str], Awaitable[None]],
        interval: float | Callable[[], float],
        name: str,
        delay: Callable[[], float] = lambda: 0.0,
        settle: float = 0.0,
    ) -> None:
        self._show = show
        self._settle = settle
        self._interval = interval
        self._name = name
        self._delay = delay
        self.latest = ""
        self._next_at = 0.0
        self._wake = asyncio.Event()
        self._closed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def interval(self) -> float:
        """The pause before the next showing, as it stands now."""
        return self._interval() if callable(self._interval) else self._interval

    def start(self) -> None:
        """Start the pump (once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._pump())

    def update(self, text: str) -> None:
        """A newer version of the text to show; the first waits ``settle`` seconds."""
        if not self.latest:
            self._next_at = max(self._next_at, time.monotonic() + self._settle)
        self.latest = text
        self._wake.set()

    def end(self, text: str) -> None:
        """``text`` is the last version, and the final text replaces it at once: nothing more is shown.

        A showing in flight still lands; :meth:`close` waits for it.
        """
        self.latest = text
        self._closed.set()
        self._wake.set()

    def shown(self, text: str) -> None:
        """``text`` was just shown directly: the next showing waits a full interval."""
        self.latest = text
        self._next_at = time.monotonic() + self.interval

    async def close(self) -> None:
        """Stop showing and wait for a showing in flight, so it cannot land after the final text.

        Closed, it shows nothing ever again: it lets go of its callbacks (the owner's methods).
        """
        self._closed.set()
        self._wake.set()
        if self._task is not None:
            task, self._task = self._task, None
            await task
        if not isinstance(self._interval, float | int):
            self._interval = self.interval
        self._show, self._delay = _show_nothing, _no_delay

    async def _sleep_unless_closed(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), seconds)

    async def _pump(self) -> None:
        while not self._closed.is_set():
            await self._wake.wait()
            self._wake.clear()
            await self._sleep_unless_closed(max(self._delay(), self._next_at - time.monotonic()))
            if self._closed.is_set():
                return
            try:
                await self._show(self.latest)
            except RetryLater:
                self._wake.set()  # the newest text is shown once the wait is over
            except Exception:
                log.info("%s: a preview failed", self._name, exc_info=True)
            self._next_at = time.monotonic() + self.interval


async def _show_nothing(text: str) -> None:
    return None


def _no_delay() -> float:
    return 0.0


class RetryLater(Exception):
    """Raised by a preview that was refused for now (flood control): try the newest text later."""
