"""Store calls made in one turn of the event loop, sent to the worker threads as one item.

(Since a turn's reads and journal appends run on the event loop itself (``TinyDBFiles._inline``),
what goes through here is the store's blocking work: files replaced whole, scans, compactions.)

A plain text turn makes about a dozen store calls, several at the same moment: its reads started
together (``core/readahead.py``: the user, the meta values its checks read, the conversation, its
messages), the answer beside its usage. Each call on its own cost a trip to a worker thread and
back: a queue push and a ``Condition.notify``, a future chained to the loop, and the loop's wake-up
through its self-pipe (12.5% and 6.8% of the bot's GIL samples for the push and the notify under
issue 14's bench). Here the calls of one loop turn that go to the same queue (same priority, same
read-only-ness) wait until the loop has run its ready callbacks, then go as one item: one thread
runs them one after another (``run``: the store makes all their writes durable with one group
commit before any result is handed back), and the results come back to the loop together; results
of several items finished before the loop woke are also handed back with one wake-up.

Running them in one thread costs no parallelism that mattered: the store's calls hold the GIL
but for their system calls, and a journal append waits for no flush of its own (the group commit
flushes after the item). A call cancelled before its item ran is skipped, as a queued call was.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

BATCH_MAX = 4
"""Calls in one item at most: a larger loop turn's calls go as several items, to several threads.
Under the telegram bench 8 took no less CPU an answer than 4 and a model request waited longer
for the reads of other chats in its item (request after update median 156-230 ms, against 149)."""


class Call:
    """One store call: the function, its arguments, the caller's future and, once run, its outcome."""

    __slots__ = ("args", "error", "fn", "future", "value")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], future: asyncio.Future[Any] | None) -> None:
        self.fn = fn
        self.args = args
        self.future = future
        self.value: Any = None
        self.error: BaseException | None = None

    @property
    def wanted(self) -> bool:
        """Whether the caller still waits (read from a worker thread: a cancel racing it only lets
        the call run, as a cancel arriving after a queued call had started did)."""
        return self.future is None or not self.future.cancelled()


def run_calls(calls: list[Call]) -> None:
    """Run the calls still wanted, one after another, keeping each one's result or error."""
    for call in calls:
        if call.wanted:
            try:
                call.value = call.fn(*call.args)
            except BaseException as exc:
                call.error = exc


Submit = Callable[[int, bool, list[Call], Callable[[list[Call]], None]], None]
"""Sends ``calls`` (priority, read-only) to a worker thread, which runs them then calls the hand-back."""


class Batches:
    """The store calls of one event loop, joined per loop turn and handed back with few wake-ups."""

    def __init__(self, loop: asyncio.AbstractEventLoop, submit: Submit) -> None:
        self.loop = loop
        self._submit = submit
        self._pending: dict[tuple[int, bool], list[Call]] = {}
        self._lock = threading.Lock()
        self._ready: list[Call] = []
        self._waking = False

    def add(self, priority: int, read_only: bool, fn: Callable[..., Any], args: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Queue a call with this loop turn's others of its kind; the future holds its result."""
        future: asyncio.Future[Any] = self.loop.create_future()
        key = (priority, read_only)
        calls = self._pending.setdefault(key, [])
        calls.append(Call(fn, args, future))
        if len(calls) == 1:
            self.loop.call_soon(self._send, key)
        elif len(calls) >= BATCH_MAX:
            self._send(key)
        return future

    def _send(self, key: tuple[int, bool]) -> None:
        calls = self._pending.pop(key, None)
        if not calls:
            return  # sent already, being full
        try:
            self._submit(key[0], key[1], calls, self._hand_back)
        except BaseException as exc:  # the store is closed: nothing was queued
            for call in calls:
                call.error = exc
            self._deliver(calls)

    def _hand_back(self, calls: list[Call]) -> None:
        """In a worker thread: give the loop these results, waking it only if it is not woken yet."""
        with self._lock:
            self._ready += calls
            wake, self._waking = not self._waking, True
        if wake:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                self.loop.call_soon_threadsafe(self._take)

    def _take(self) -> None:
        with self._lock:
            calls, self._ready, self._waking = self._ready, [], False
        self._deliver(calls)

    @staticmethod
    def _deliver(calls: list[Call]) -> None:
        for call in calls:
            if call.future is None or call.future.done():
                continue  # cancelled
            if call.error is not None:
                call.future.set_exception(call.error)
            else:
                call.future.set_result(call.value)
