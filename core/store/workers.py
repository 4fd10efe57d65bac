"""The TinyDB store's worker threads, taking work by priority rather than in arrival order.

Under load most of the store's work is writes, each waiting for its file's fsync; in one FIFO
queue the few reads a turn makes before its model request (the user, the conversation, its
recent messages) waited behind every other turn's writes. Here reads and the writes of a
finished answer go first, then the other writes a turn waits for (its record, its message),
then the marks nobody waits for (that the person has it all). Each kind still runs in arrival
order; every submitted item runs (``shutdown`` lets the queue drain).
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

R = TypeVar("R")

READ = 0
"""Reads: short, and what a turn's model request waits for. The writes of an answer the person
waits to see (the answer and its usage, between the model's last piece and the final message)
go with them."""
WRITE = 1
"""Writes a turn waits for before it goes on."""
LATER = 2
"""Writes nobody waits for to show anything (delivery marks)."""
_STOP = 3


class PriorityWorkers:
    """A fixed number of threads running submitted calls, the lowest priority number first."""

    def __init__(self, threads: int, name: str) -> None:
        self._threads = threads
        self._name = name
        self._queue: queue.PriorityQueue[tuple[int, int, Callable[[], None] | None]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._started: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, priority: int, fn: Callable[..., R], *args: Any) -> Future[R]:
        """Run ``fn(*args)`` in a worker thread; its future holds the result."""
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

        self._start()
        self._queue.put((priority, next(self._order), work))
        return future

    def _start(self) -> None:
        if len(self._started) == self._threads:
            return
        with self._lock:
            while len(self._started) < self._threads:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}_{len(self._started)}", daemon=True
                )
                thread.start()
                self._started.append(thread)

    def _work(self) -> None:
        while True:
            _, _, work = self._queue.get()
            if work is None:
                return
            work()

    def shutdown(self) -> None:
        """Stop the threads once everything submitted has run (returns at once)."""
        with self._lock:
            for _ in self._started:
                self._queue.put((_STOP, next(self._order), None))
            self._started = []
