"""A turn's store operations run on the event loop (``TinyDBFiles._inline``): they never flush
there, their journals are still compacted (in a worker thread), and nothing is lost or counted
twice on the way."""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from core.store.base import ConversationRecord, IntakeRecord, MessageRecord, UsageRecord, UserRecord
from core.store.tinydb_conversations import TOUCHES_KEPT, touches_file
from core.store.tinydb_files import FileOps, load_syncfs
from core.store.tinydb_intake import SUPERSEDED_LINES, intake_file
from core.store.tinydb_store import TinyDBStore

TURNS = 3 * SUPERSEDED_LINES  # every journal a turn writes passes its compaction threshold twice or more
CHAT = "telegram:1"
DAY = 1_700_000_000.0


class Flushes:
    """FileOps whose flushes (fsync, syncfs) count which thread made them, of a file or a folder."""

    def __init__(self, syncfs: bool) -> None:
        self.by_thread: Counter[str] = Counter()
        self._syncfs = load_syncfs() if syncfs else None

    def _on(self, call: Callable[[int], None]) -> Callable[[int], None]:
        def flush(fd: int) -> None:
            where = "loop" if threading.current_thread() is threading.main_thread() else "worker"
            what = "folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
            self.by_thread[f"{where} {what}"] += 1
            call(fd)

        return flush

    def ops(self) -> FileOps:
        syncfs = self._on(self._syncfs) if self._syncfs is not None else None
        return FileOps(fsync=self._on(os.fsync), syncfs=syncfs)


def _lines(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


@pytest.mark.parametrize("syncfs", [True, False], ids=["syncfs", "fsync-each"])
async def test_turns_never_flush_on_the_loop_and_their_journals_are_still_compacted(
    tmp_path: Path, syncfs: bool
) -> None:
    if syncfs and load_syncfs() is None:
        pytest.skip("no syncfs on this system")
    flushes = Flushes(syncfs)
    store = TinyDBStore(tmp_path, ops=flushes.ops())
    await store.open()
    await store.put_user(UserRecord(id="u1", identities=("telegram:1",)))
    await store.put_conversation(ConversationRecord(id="c1", scope="user:u1", updated_at=DAY))
    flushes.by_thread.clear()
    for turn in range(TURNS):
        at = DAY + turn
        key = f"telegram:{turn}"
        rec = IntakeRecord(key=key, chat=CHAT, message={"text": str(turn)}, received_at=at)
        assert await store.record(rec) is not None
        assert await store.find_user("telegram:1") is not None
        assert [c.id for c in await store.list_conversations("user:u1")] == ["c1"]
        await store.get_messages("c1", last=20)
        await store.append_messages([MessageRecord(f"q{turn}", "c1", "user", "hi", at)])
        await store.append_messages([MessageRecord(f"a{turn}", "c1", "assistant", "hello", at + 0.5)])
        await store.add_usage(UsageRecord("u1", "c1", "m", 10, 5, 0.01, at))
        await store.mark_answered(CHAT, key, [{"text": "hello"}])
        await store.mark_shown(CHAT, key, f"ref{turn}")
        await store.mark_delivered(CHAT, key, f"ref{turn}")
    await store.close()  # waits for the compactions still queued

    assert flushes.by_thread["loop file"] == 0, "a turn's operation flushed a file on the event loop"
    if syncfs:
        assert flushes.by_thread["loop folder"] == 0, "a turn's operation flushed on the event loop"
    else:  # a new folder's entry is flushed before its lock is released: once per folder created
        assert flushes.by_thread["loop folder"] <= 8
    assert flushes.by_thread["worker file"] + flushes.by_thread["worker folder"] > 0

    # Compacted: each journal holds its records (or sums) and up to its threshold's worth of
    # superseded lines, not one line per change (the intake file took four a turn).
    layout = store.layout
    assert _lines(intake_file(tmp_path, CHAT)) <= TURNS + SUPERSEDED_LINES + 4
    assert _lines(layout.user_usage_file("u1")) <= 2 * SUPERSEDED_LINES
    assert _lines(layout.global_usage_part("u1")) <= 2 * SUPERSEDED_LINES
    assert _lines(touches_file(layout.scope_file("user:u1"))) <= 2 * TOUCHES_KEPT

    # Nothing lost or counted twice, read back by a store that starts cold.
    again = TinyDBStore(tmp_path)
    await again.open()
    messages = await again.get_messages("c1")
    assert [m.id for m in messages[:2]] == ["q0", "a0"]
    assert len(messages) == 2 * TURNS
    totals = await again.usage_totals("u1", DAY - DAY % 86_400)
    assert (totals.prompt_tokens, totals.completion_tokens) == (10 * TURNS, 5 * TURNS)
    assert await again.unfinished("telegram") == []
    [conv] = await again.list_conversations("user:u1")
    assert conv.updated_at == DAY + TURNS - 1 + 0.5
    await again.close()


async def test_while_a_backup_holds_the_whole_store_the_event_loop_keeps_running(tmp_path: Path) -> None:
    """A backup takes every lock for its length (minutes, for a large store). An operation that
    would have waited for it on the event loop froze the bot (no polling, no drafts); it waits in
    a worker thread instead, and completes once the backup is done."""
    store = TinyDBStore(tmp_path)
    await store.open()
    await store.set_meta("k", 1)
    backup = TinyDBStore(tmp_path)  # `ferry backup`, as another holder of the locks
    await backup.open()
    holding, release = threading.Event(), threading.Event()

    def hold_everything() -> None:
        with backup._everything_locked():
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold_everything)
    holder.start()
    assert holding.wait(10)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    read = asyncio.create_task(store.get_meta("k"))
    await asyncio.sleep(0.2)
    assert not read.done()  # it waits for the backup…
    assert ticks >= 5  # …while the loop runs on
    release.set()
    assert await read == 1
    ticker.cancel()
    holder.join()
    await store.record(IntakeRecord(key="telegram:9", chat=CHAT, message={}, received_at=DAY))  # and back on the loop
    await backup.close()
    await store.close()


def test_a_store_wide_lock_reported_held_with_eacces_counts_as_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some file systems report a lock held elsewhere as EACCES, not EWOULDBLOCK: the operation
    must then go to a worker thread, not fail."""
    from core.store import tinydb_files

    locks = tinydb_files.LockStripes(tmp_path)

    def held(fd: int, op: int) -> None:
        raise PermissionError(errno.EACCES, "held")

    monkeypatch.setattr(tinydb_files.fcntl, "flock", held)
    assert locks.try_shared() is False
    locks.close()
