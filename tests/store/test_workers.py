"""The store's worker threads: priorities, the threads kept for reads, draining on shutdown."""

from __future__ import annotations

import threading

import pytest

from core.store.workers import LATER, READ, WRITE, PriorityWorkers


def test_a_read_runs_while_every_other_thread_waits_in_a_write() -> None:
    workers = PriorityWorkers(3, "test", readers=1)
    release = threading.Event()
    writes = [workers.submit(WRITE, release.wait, 10) for _ in range(2)]
    # Both threads that take writes are inside one; a read goes to the thread kept for reads.
    assert workers.submit(READ, lambda: "user", read_only=True).result(timeout=5) == "user"
    # A write at read priority (an answer being finished) is not taken by that thread.
    finishing = workers.submit(READ, lambda: "answer")
    assert not finishing.done()
    release.set()
    assert finishing.result(timeout=5) == "answer"
    assert all(w.result(timeout=5) for w in writes)
    workers.shutdown()


def test_one_thread_runs_reads_first_then_writes_then_later_marks_each_in_arrival_order() -> None:
    workers = PriorityWorkers(1, "test")
    ran: list[str] = []
    gate = threading.Event()
    first = workers.submit(WRITE, gate.wait, 10)  # holds the only thread while the rest queue up
    futures = [
        workers.submit(LATER, ran.append, "mark 1"),
        workers.submit(WRITE, ran.append, "write 1"),
        workers.submit(READ, ran.append, "read 1", read_only=True),
        workers.submit(READ, ran.append, "finish 1"),
        workers.submit(WRITE, ran.append, "write 2"),
        workers.submit(READ, ran.append, "read 2", read_only=True),
        workers.submit(LATER, ran.append, "mark 2"),
    ]
    gate.set()
    first.result(timeout=5)
    for f in futures:
        f.result(timeout=5)
    assert ran == ["read 1", "finish 1", "read 2", "write 1", "write 2", "mark 1", "mark 2"]
    workers.shutdown()


def test_shutdown_lets_everything_submitted_run_and_errors_reach_their_future() -> None:
    workers = PriorityWorkers(4, "test", readers=2)
    gate = threading.Event()
    blocked = [workers.submit(WRITE, gate.wait, 10) for _ in range(2)]
    queued = [workers.submit(p, lambda p=p: p, read_only=p == READ) for p in (LATER, WRITE, READ) * 5]
    failing = workers.submit(READ, int, "not a number", read_only=True)
    workers.shutdown()
    gate.set()
    assert [f.result(timeout=5) for f in queued] == [LATER, WRITE, READ] * 5
    assert all(f.result(timeout=5) for f in blocked)
    with pytest.raises(ValueError):
        failing.result(timeout=5)


def test_at_least_one_thread_is_left_for_writes() -> None:
    with pytest.raises(ValueError):
        PriorityWorkers(2, "test", readers=2)


def test_a_mark_that_waited_long_enough_goes_before_newer_writes() -> None:
    """Delivery marks starved under a load that never let the queues empty (issue 14's bench)."""
    now = [0.0]
    workers = PriorityWorkers(1, "test", later_wait=0.5, clock=lambda: now[0])
    ran: list[str] = []
    gate = threading.Event()
    first = workers.submit(WRITE, gate.wait, 10)
    futures = [workers.submit(LATER, ran.append, "old mark")]
    now[0] = 0.4
    futures.append(workers.submit(LATER, ran.append, "new mark"))
    now[0] = 0.6  # the first mark has waited 0.6 s, the second 0.2 s
    futures += [workers.submit(WRITE, ran.append, f"write {i}") for i in range(3)]
    futures.append(workers.submit(READ, ran.append, "read", read_only=True))
    gate.set()
    first.result(timeout=5)
    for f in futures:
        f.result(timeout=5)
    assert ran == ["old mark", "read", "write 0", "write 1", "write 2", "new mark"]
    workers.shutdown()
