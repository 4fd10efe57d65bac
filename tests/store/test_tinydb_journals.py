"""The TinyDB store's journals under attack: another process writing between an operation's steps,
crashes at awkward moments, and stores written by the previous schema."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.store.base import ConversationRecord, IntakeRecord, MessageRecord
from core.store.tinydb_files import FileOps
from core.store.tinydb_intake import intake_file
from core.store.tinydb_store import TinyDBStore


class Disk:
    """Which renames are durable on a system without ``syncfs``: a rename is, once its folder was
    fsynced after it."""

    def __init__(self) -> None:
        self.pending: set[Path] = set()  # folders with a rename not yet flushed

    def ops(self) -> FileOps:
        def replace(src: str | Path, dst: str | Path) -> None:
            os.replace(src, dst)
            self.pending.add(Path(dst).parent)

        def fsync(fd: int) -> None:
            os.fsync(fd)
            self.pending.discard(Path(os.readlink(f"/proc/self/fd/{fd}")))

        def open_append(path: Path) -> int:
            if not path.exists():
                self.pending.add(path.parent)
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

        return FileOps(replace=replace, fsync=fsync, open_append=open_append, syncfs=None)


async def test_an_append_after_a_compaction_is_not_acknowledged_before_the_compaction_is_durable(
    tmp_path: Path,
) -> None:
    """/retry rewrites a chunk; another process appends to the new chunk in the moment before the
    rewriting operation's group commit. Its append must not be acknowledged while the rename it
    appended to could still be undone by a crash (the message would be lost with the old file)."""
    disk = Disk()
    a = TinyDBStore(tmp_path, ops=disk.ops())
    b = TinyDBStore(tmp_path, ops=disk.ops())
    await a.open()
    await b.open()
    await a.put_conversation(ConversationRecord(id="c1", scope="user:u1"))
    await a.append_messages([MessageRecord(f"m{i}", "c1", "user", "x", 1.0) for i in range(3)])
    folder = a.layout.conversation_dir("c1")
    seen: list[bool] = []
    durable = a._commit.durable

    def other_process_first(items: Any, real: Callable[[Any], None] = durable) -> None:
        if not seen:  # the other process takes the lock a moment before this one's commit
            b._guard(b._append_messages, [MessageRecord("late", "c1", "user", "y", 2.0)])
            seen.append(folder not in disk.pending)
        real(items)

    a._commit.durable = other_process_first  # type: ignore[method-assign]
    await a.truncate_messages("c1", 1)
    assert seen == [True], "an append was acknowledged while the chunk's rewrite could still be lost"
    assert [m.id for m in await b.get_messages("c1")] == ["m0", "late"]
    await a.close()
    await b.close()


async def test_a_journal_created_by_a_killed_writer_is_made_durable_by_the_next(tmp_path: Path) -> None:
    """A writer killed mid-append to a journal it created leaves the file with only a torn line,
    its folder entry never flushed. The next append makes that entry durable, or its
    acknowledged line could vanish with the file."""
    disk = Disk()
    ops = disk.ops()
    path = intake_file(tmp_path, "telegram:1")
    path.parent.mkdir(parents=True)
    fd = ops.open_append(path)
    os.write(fd, b'{"key":"telegram:0","ch')  # then kill -9: no flush
    os.close(fd)
    store = TinyDBStore(tmp_path, ops=ops)
    await store.open()
    stored = await store.record(IntakeRecord("telegram:7", "telegram:1", {"t": "hi"}, 1.0))
    assert stored is not None and stored.seq == 0
    assert path.parent not in disk.pending
    assert [r.key for r in await store.unfinished("telegram")] == ["telegram:7"]
    await store.close()


async def test_messages_read_before_another_process_rewrote_or_grew_the_chunk_are_not_reused(
    tmp_path: Path,
) -> None:
    """Each store keeps what it derived from a chunk; the other process's /retry (a rewrite),
    updates and appends are all seen."""
    a, b = TinyDBStore(tmp_path), TinyDBStore(tmp_path)
    await a.open()
    await b.open()
    await a.put_conversation(ConversationRecord(id="c1", scope="user:u1"))
    await a.append_messages([MessageRecord(f"m{i}", "c1", "user", f"t{i}", 1.0) for i in range(3)])
    assert [m.id for m in await a.get_messages("c1")] == ["m0", "m1", "m2"]
    await b.truncate_messages("c1", 2)
    [x] = await b.append_messages([MessageRecord("x", "c1", "assistant", "again", 2.0)])
    assert [m.id for m in await a.get_messages("c1")] == ["m0", "m1", "x"]
    await b.update_message(MessageRecord("x", "c1", "assistant", "changed", 2.0, seq=x.seq))
    assert [m.content for m in await a.get_messages("c1", last=2)] == ["t1", "changed"]
    await b.truncate_messages("c1", 1)
    await b.append_messages([MessageRecord("y", "c1", "user", "y", 3.0), MessageRecord("z", "c1", "user", "z", 3.0)])
    conv = await a.get_conversation("c1")
    assert conv is not None and conv.message_count == 3
    assert [m.id for m in await a.get_messages("c1")] == ["m0", "y", "z"]
    await a.close()
    await b.close()
