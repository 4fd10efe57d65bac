"""Group commit: many writers' changes made durable together, one flush per batch.

Used by the TinyDB store for the folders its operations renamed files in; written for any
store-side durability that many concurrent callers wait for (a durable inbox, a log file).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

# Failed batches remembered so that every waiter of a failed batch sees the failure.
REMEMBERED_FAILURES = 64

K = TypeVar("K", bound=Hashable)


class GroupCommit(Generic[K]):
    """Makes many writers' changes durable together: one flush per batch.

    A writer changes what it must under its own locks, then calls :meth:`durable` with what needs
    flushing (for the TinyDB store, the folders whose entries it renamed). The first waiter that
    finds no flush running becomes the leader: it takes every item queued so far, by any thread,
    flushes them with one call, and releases all their writers; writers that came during that
    flush form the next batch. So N concurrent turns cost one flush, and no lock is held while it
    runs.

    Reusable: ``flush`` is any blocking call on a batch of items (one ``syncfs`` for a set of
    folders, one fsync of a log file for a set of appended records).
    """

    def __init__(self, flush: Callable[[set[K]], None]) -> None:
        self._flush = flush
        self._cond = threading.Condition()
        self._pending: set[K] = set()
        self._collecting = 1  # the batch new items join
        self._completed = 0  # the last batch flushed
        self._flushing = False
        self._failures: OrderedDict[int, BaseException] = OrderedDict()

    def durable(self, items: Iterable[K]) -> None:
        """Return once every item is flushed, together with other writers' items; raise if that failed."""
        wanted = set(items)
        if not wanted:
            return
        with self._cond:
            self._pending.update(wanted)
            ticket = self._collecting
            while self._completed < ticket:
                if self._flushing:
                    self._cond.wait()
                    continue
                self._lead()
            failure = self._failures.get(ticket)
        if failure is not None:
            raise failure

    def _lead(self) -> None:
        """Flush the collecting batch (called holding the condition; releases it while flushing)."""
        batch, self._pending = self._pending, set()
        number = self._collecting
        self._collecting += 1
        self._flushing = True
        failure: BaseException | None = None
        self._cond.release()
        try:
            self._flush(batch)
        except BaseException as exc:  # every waiter of the batch must hear of it, not just the leader
            failure = exc
        finally:
            self._cond.acquire()
            self._flushing = False
            self._completed = number
            if failure is not None:
                self._failures[number] = failure
                while len(self._failures) > REMEMBERED_FAILURES:
                    self._failures.popitem(last=False)
            self._cond.notify_all()


class LoopCommit(Generic[K]):
    """The group commit waited for from an event loop: ``await durable(items)`` never blocks it.

    For operations run on the loop itself (the TinyDB store's turn operations, ``_inline``): one
    thread waits for the group commit on their behalf. Everything queued while it waited goes to
    the next flush together (with the worker threads' own waiters, through the same
    :class:`GroupCommit`), and each loop is woken once per flush for all of its waiters.
    """

    def __init__(self, commit: GroupCommit[K], name: str) -> None:
        self._commit = commit
        self._name = name
        self._cond = threading.Condition()
        self._queue: list[tuple[set[K], asyncio.Future[None]]] = []
        self._thread: threading.Thread | None = None
        self._kicks: set[asyncio.AbstractEventLoop] = set()  # loops that will wake the thread

    async def durable(self, items: set[K]) -> None:
        """Return once ``items`` are flushed; raise what the flush raised.

        The thread is woken once the loop has run the rest of its round, not at once: every turn
        that wrote in the round joins the same flush. Woken at the first, it took one turn's
        items, and its wake-up and flush took the GIL from the loop in the middle of the round.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._wait, name=self._name, daemon=True)
                self._thread.start()
            self._queue.append((items, future))
            kick = loop not in self._kicks
            self._kicks.add(loop)
        if kick:
            loop.call_soon(self._kick, loop)
        await future

    def _kick(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._cond:
            self._kicks.discard(loop)
            self._cond.notify()

    def _wait(self) -> None:
        me = threading.current_thread()
        while True:
            with self._cond:
                while not self._queue and self._thread is me:
                    self._cond.wait()
                if not self._queue:
                    return
                batch, self._queue = self._queue, []
            failure: BaseException | None = None
            try:
                self._commit.durable(set().union(*(items for items, _ in batch)))
            except BaseException as exc:  # every waiter of the batch hears of it
                failure = exc
            by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
            for _, future in batch:
                by_loop.setdefault(future.get_loop(), []).append(future)
            for loop, futures in by_loop.items():
                with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
                    loop.call_soon_threadsafe(_settle, futures, failure)

    def shutdown(self) -> None:
        """Let the thread end once the queued waiters are settled (returns at once)."""
        with self._cond:
            self._thread = None
            self._cond.notify_all()


def _settle(futures: list[asyncio.Future[None]], failure: BaseException | None) -> None:
    for future in futures:
        if future.done():
            continue  # its waiter was cancelled
        if failure is None:
            future.set_result(None)
        else:
            future.set_exception(failure)
