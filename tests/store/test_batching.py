"""Store calls of one loop turn go to the worker threads as one item per kind (core/store/batching.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.store.base import StoreError
from core.store.batching import BATCH_MAX, Batches, Call, run_calls
from core.store.tinydb_store import TinyDBStore
from core.store.workers import LATER, READ, WRITE


class Sent:
    """A fake worker pool: records each item, runs it in a thread of its own when told."""

    def __init__(self) -> None:
        self.items: list[tuple[int, bool, list[Call]]] = []
        self._backs: list[Callable[[list[Call]], None]] = []

    def __call__(self, priority: int, read_only: bool, calls: list[Call], back: Callable[[list[Call]], None]) -> None:
        self.items.append((priority, read_only, calls))
        self._backs.append(back)

    def run_all(self) -> None:
        def work(calls: list[Call], back: Callable[[list[Call]], None]) -> None:
            run_calls(calls)
            back(calls)

        items = zip((calls for _, _, calls in self.items), self._backs, strict=True)
        threads = [threading.Thread(target=work, args=item) for item in items]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def _fail() -> None:
    raise ValueError("no")


async def test_calls_of_one_loop_turn_go_as_one_item_per_kind_each_with_its_own_outcome() -> None:
    sent = Sent()
    batches = Batches(asyncio.get_running_loop(), sent)
    reads = [batches.add(READ, True, str.upper, (w,)) for w in ("user", "meta")]
    failing = batches.add(READ, True, _fail, ())
    write = batches.add(WRITE, False, len, ("message",))
    mark = batches.add(LATER, False, len, ("mark",))
    await asyncio.sleep(0)  # the loop turn ends: the calls are sent
    assert sorted((p, r, len(c)) for p, r, c in sent.items) == [(READ, True, 3), (WRITE, False, 1), (LATER, False, 1)]
    await asyncio.to_thread(sent.run_all)
    assert [await r for r in reads] == ["USER", "META"]
    with pytest.raises(ValueError):
        await failing
    assert (await write, await mark) == (7, 4)


async def test_a_full_item_is_sent_at_once_and_the_rest_in_another() -> None:
    sent = Sent()
    batches = Batches(asyncio.get_running_loop(), sent)
    futures = [batches.add(WRITE, False, int, (str(i),)) for i in range(BATCH_MAX + 1)]
    assert [len(c) for _, _, c in sent.items] == [BATCH_MAX]
    await asyncio.sleep(0)
    assert [len(c) for _, _, c in sent.items] == [BATCH_MAX, 1]
    await asyncio.to_thread(sent.run_all)
    assert [await f for f in futures] == list(range(BATCH_MAX + 1))


async def test_a_call_cancelled_before_its_item_runs_is_skipped() -> None:
    sent = Sent()
    batches = Batches(asyncio.get_running_loop(), sent)
    ran: list[str] = []
    kept = batches.add(WRITE, False, ran.append, ("kept",))
    dropped = batches.add(WRITE, False, ran.append, ("dropped",))
    dropped.cancel()
    await asyncio.sleep(0)
    await asyncio.to_thread(sent.run_all)
    await kept
    assert ran == ["kept"]


async def test_a_closed_store_fails_the_calls_it_had_not_sent(tmp_path: Path) -> None:
    store = TinyDBStore(tmp_path)
    await store.open()
    pending: Any = asyncio.ensure_future(store.set_meta("x", 1))  # a write run in a worker thread
    await asyncio.sleep(0)  # the call is queued for this loop turn's item
    await store.close()
    with pytest.raises(StoreError):
        await pending
