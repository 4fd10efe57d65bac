"""The TinyDB store's worker threads, taking work by priority rather than in arrival order.

(A turn's reads and journal appends no longer come here: they run on the event loop,
``TinyDBFiles._inline``. What comes here is what may block: files replaced whole, scans, compactions.)

Under load most of the store's work is writes, each waiting for its file's fsync; in one FIFO
queue the few reads a turn makes before its model request (the user, the conversation, its
recent messages) waited behind every other turn's writes. Here reads and the writes of a
finished answer go first, then the other writes a turn waits for (its record, its message),
then the marks nobody waits for (that the person has it all). Each kind still runs in arrival
order; every submitted item runs (``shutdown`` lets the queues drain).

A mark nobody waits for still may not wait for ever: under a load that never lets the queues empty
(the 50-chat bench, answered as fast as the bot can) the delivery marks were starved, 1,261 of them
queued after 3,000 answers, each holding its answer's objects (memory grew by 100 MB) and leaving
its record "answered" in the chat's intake file (read whole at each of the chat's turns). A mark
that has waited ``later_wait`` seconds is taken before the other work, so the backlog stays about
that many seconds' worth.

Going first is not enough when every thread is already inside a write waiting for its flush: a
read arriving then waits for one of them to finish. So a few threads are kept for reads alone
(``readers``); the others take any work, reads first.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

R = TypeVar("R")

READ = 0
"""Reads (in the TinyDB store, since a turn's own reads run on the event loop: scans of many files)."""
WRITE = 1
"""Writes a caller waits for before it goes on."""
LATER = 2
"""Writes nobody waits for to show anything (the TinyDB store's journal compactions)."""

LATER_WAIT = 0.5
"""Seconds a LATER call waits at most behind the other work (then it goes first)."""

_Item = tuple[int, int, Callable[[], None]]


class PriorityWorkers:
    """``threads`` threads running submitted calls, the lowest priority number first, of which
    ``readers`` run only calls submitted as read-only."""

    def __init__(
        self,
        threads: int,
        name: str,
        readers: int = 0,
        later_wait: float = LATER_WAIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= readers < threads:
            raise ValueError("readers must leave at least one thread for writes")
        self._threads = threads
        self._readers = readers
        self._name = name
        self._reads: list[_Item] = []  # read-only calls: any thread takes them
        self._others: list[_Item] = []  # READ and WRITE calls: only the threads not kept for reads
        self._later: deque[tuple[float, Callable[[], None]]] = deque()  # LATER calls, since when
        self._later_wait = later_wait
        self._clock = clock
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._for_any = threading.Condition(self._lock)
        self._for_reads = threading.Condition(self._lock)
        self._idle_readers = 0
        self._started: list[threading.Thread] = []
        self._stopping = False

    def submit(self, priority: int, fn: Callable[..., R], *args: Any, read_only: bool = False) -> Future[R]:
        """Run ``fn(*args)`` in a worker thread; its future holds the result. A ``read_only`` call
        (priority READ) may also run in a thread kept for reads."""
        future: Future[R] = Future()

        def work() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

        with self._lock:
            self._start()
            item = (priority, next(self._order), work)
            if read_only and priority == READ:
                heapq.heappush(self._reads, item)
                (self._for_reads if self._idle_readers else self._for_any).notify()
            elif priority >= LATER:
                self._later.append((self._clock(), work))
                self._for_any.notify()
            else:
                heapq.heappush(self._others, item)
                self._for_any.notify()
        return future

    def _start(self) -> None:
        """Start the threads on first use (called holding the lock)."""
        if self._started or self._stopping:
            return
        for i in range(self._threads):
            reader = i < self._readers
            thread = threading.Thread(target=self._work, args=(reader,), name=f"{self._name}_{i}", daemon=True)
            thread.start()
            self._started.append(thread)

    def _next(self, reader: bool) -> Callable[[], None] | None:
        """The next call for this thread, waiting for one; None once stopping with none left."""
        with self._lock:
            while True:
                if reader:
                    if self._reads:
                        return heapq.heappop(self._reads)[2]
                else:
                    later = self._later
                    if later and self._clock() - later[0][0] >= self._later_wait:
                        return later.popleft()[1]  # waited long enough: before the rest
                    queue = min((q for q in (self._reads, self._others) if q), key=lambda q: q[0], default=None)
                    if queue is not None:
                        return heapq.heappop(queue)[2]
                    if later:
                        return later.popleft()[1]
                if self._stopping:
                    return None
                if reader:
                    self._idle_readers += 1
                    try:
                        self._for_reads.wait()
                    finally:
                        self._idle_readers -= 1
                else:
                    self._for_any.wait()

    def _work(self, reader: bool) -> None:
        while (work := self._next(reader)) is not None:
            work()

    def shutdown(self) -> None:
        """Stop the threads once everything submitted has run (returns at once)."""
        with self._lock:
            self._stopping = True
            self._for_any.notify_all()
            self._for_reads.notify_all()
