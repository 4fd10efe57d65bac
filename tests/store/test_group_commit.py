"""The group commit: many writers' changes made durable by one flush, and every write acknowledged
only after a flush that covers it."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from core.store.base import ConversationRecord, MessageRecord, StoreError, UsageRecord
from core.store.group_commit import GroupCommit, LoopCommit
from core.store.tinydb_files import FileOps
from core.store.tinydb_store import TinyDBStore


def test_concurrent_writers_share_flushes_and_each_waits_for_its_own() -> None:
    flushed: list[set[int]] = []
    entered = threading.Event()
    release = threading.Event()

    def flush(batch: set[int]) -> None:
        flushed.append(set(batch))
        if len(flushed) == 1:
            entered.set()
            release.wait(5)  # hold the first flush so the others pile up behind it

    commit: GroupCommit[int] = GroupCommit(flush)
    done: list[int] = []

    def writer(i: int) -> None:
        commit.durable([i])
        done.append(i)

    first = threading.Thread(target=writer, args=(0,))
    first.start()
    assert entered.wait(5)
    others = [threading.Thread(target=writer, args=(i,)) for i in range(1, 9)]
    for t in others:
        t.start()
    while len(commit._pending) < 8:  # all eight queued behind the running flush
        threading.Event().wait(0.001)
    assert done == []  # nobody is released before a flush covering their item ends
    release.set()
    for t in [first, *others]:
        t.join(5)
    assert sorted(done) == list(range(9))
    assert flushed == [{0}, set(range(1, 9))]  # eight writers, one flush


def test_a_failed_flush_fails_every_writer_of_its_batch_and_not_the_next() -> None:
    calls = 0

    def flush(batch: set[str]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError(5, "Input/output error")

    commit: GroupCommit[str] = GroupCommit(flush)
    with pytest.raises(OSError):
        commit.durable(["a"])
    commit.durable(["b"])  # a later batch that flushed fine
    commit.durable([])  # nothing to flush: returns at once
    assert calls == 2


async def test_writes_of_one_loop_round_share_one_flush_begun_after_them() -> None:
    """Fifty turns that write in the same round of the event loop (a burst of updates): one flush
    for all of them, started once the round is over. The thread waiting for the group commit was
    woken by the first and flushed for it alone: 6.9 ``syncfs`` an answer in issue 14's bench."""
    flushed: list[set[int]] = []
    written: set[int] = set()

    def flush(batch: set[int]) -> None:
        assert batch <= written  # what a flush covers was written before it began
        flushed.append(set(batch))

    commit: LoopCommit[int] = LoopCommit(GroupCommit(flush), "test-commit")
    done: list[int] = []

    async def turn(i: int) -> None:
        written.add(i)
        time.sleep(0.001)  # noqa: ASYNC251 - the appends: system calls that let other threads take the GIL
        await commit.durable({i})
        assert i in set().union(*flushed)  # acknowledged only once flushed
        done.append(i)

    try:
        await turn(-1)  # the thread starts, and flushes what it finds queued
        await asyncio.gather(*(turn(i) for i in range(50)))
        assert flushed == [{-1}, set(range(50))]
        await turn(50)  # a later round: a flush of its own
        assert flushed == [{-1}, set(range(50)), {50}]
        assert sorted(done) == list(range(-1, 51))
    finally:
        commit.shutdown()


async def test_writes_queued_during_a_flush_go_in_the_next_without_waiting_for_a_round() -> None:
    entered = threading.Event()
    release = threading.Event()
    flushed: list[set[int]] = []

    def flush(batch: set[int]) -> None:
        flushed.append(set(batch))
        if len(flushed) == 1:
            entered.set()
            release.wait(5)

    commit: LoopCommit[int] = LoopCommit(GroupCommit(flush), "test-commit")
    try:
        first = asyncio.ensure_future(commit.durable({0}))
        await asyncio.get_running_loop().run_in_executor(None, entered.wait, 5)
        later = [asyncio.ensure_future(commit.durable({i})) for i in range(1, 4)]
        await asyncio.sleep(0.01)
        assert not any(f.done() for f in [first, *later])
        release.set()
        await asyncio.wait_for(asyncio.gather(first, *later), 5)
        assert flushed == [{0}, {1, 2, 3}]
    finally:
        commit.shutdown()


class Journal(FileOps):
    """Writes normally and notes, in order, each file replaced, each write and each flush of the file system."""

    def __init__(self, events: list[str]) -> None:
        def write(fd: int, data: memoryview) -> int:
            events.append("bytes")
            return os.write(fd, data)

        super().__init__(write=write, syncfs=lambda fd: events.append("syncfs"))
        object.__setattr__(self, "_events", events)

    def atomic_write(self, path: Path, data: bytes, folders: set[Path] | None = None) -> None:
        super().atomic_write(path, data, folders)
        self._events.append(f"write {path.name}")  # type: ignore[attr-defined]


async def test_a_turn_is_acknowledged_only_after_a_flush_covering_its_renames(tmp_path: Path) -> None:
    events: list[str] = []
    store = TinyDBStore(tmp_path, ops=Journal(events))
    await store.open()
    await store.put_conversation(ConversationRecord(id="c1", scope="user:u1"))
    events.clear()
    await store.append_messages([MessageRecord("m1", "c1", "user", "hi", 1.0)])
    assert events and events[-1] == "syncfs" and "bytes" in events  # appended to its chunk, then flushed
    events.clear()
    await store.add_usage(UsageRecord("u1", "c1", "m", 1, 2, 0.0, 1.0))
    # Usage is appended to two journals (no file replaced), flushed by the batch's syncfs.
    assert events[-1] == "syncfs" and events.count("bytes") == 2 and not any(e.startswith("write") for e in events)
    await store.close()


async def test_a_failing_flush_is_reported_as_a_store_error(tmp_path: Path) -> None:
    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    store = TinyDBStore(tmp_path, ops=FileOps(syncfs=broken))
    with pytest.raises(StoreError, match="Input/output error"):
        await store.open()


class FsyncCounting(FileOps):
    """Writes normally and notes which paths were fsynced, and each flush of the file system."""

    def __init__(self, events: list[str], *, with_syncfs: bool = True) -> None:
        def fsync(fd: int) -> None:
            events.append(f"fsync {os.readlink(f'/proc/self/fd/{fd}')}")
            os.fsync(fd)

        super().__init__(fsync=fsync, syncfs=(lambda fd: events.append("syncfs")) if with_syncfs else None)


def folders_fsynced(events: list[str]) -> set[Path]:
    return {Path(e[6:]) for e in events if e.startswith("fsync ") and Path(e[6:]).is_dir()}


def conversation_files(root: Path) -> list[Path]:
    return list(root.rglob("conversation.json"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names an fd's path through /proc")
async def test_a_new_conversations_folders_are_made_durable_by_the_batchs_flush(tmp_path: Path) -> None:
    """A new conversation creates its shard folders: their entries in the parents are made durable
    with the batch (one ``syncfs``), not by two folder fsyncs of their own before it; where there is
    no ``syncfs`` each new folder's parent is fsynced before the write is acknowledged."""
    events: list[str] = []
    store = TinyDBStore(tmp_path / "a", ops=FsyncCounting(events))
    await store.open()
    events.clear()
    await store.put_conversation(ConversationRecord(id="c1", scope="user:u1"))
    await store.append_messages([MessageRecord("m1", "c1", "user", "hi", 1.0)])
    assert not folders_fsynced(events), events
    assert events[-1] == "syncfs"
    await store.close()

    events.clear()
    store = TinyDBStore(tmp_path / "b", ops=FsyncCounting(events, with_syncfs=False))
    await store.open()
    events.clear()
    await store.put_conversation(ConversationRecord(id="c1", scope="user:u1"))
    (file,) = conversation_files(tmp_path / "b")
    assert {file.parent, file.parent.parent, file.parent.parent.parent} <= folders_fsynced(events)
    await store.close()
