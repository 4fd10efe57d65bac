"""TinyDB-specific behaviour: failing disks, leftover temp files, migrations, sharding."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.store.base import (
    SCHEMA_VERSION,
    ConversationRecord,
    IntakeRecord,
    MessageRecord,
    StoreError,
    UsageRecord,
    UserRecord,
)
from core.store.tinydb_conversations import touches_file
from core.store.tinydb_files import FileOps, encode
from core.store.tinydb_intake import intake_file
from core.store.tinydb_layout import chunk_lines, conversation_tables, scope_tables, split_chunks
from core.store.tinydb_migrations import MIGRATIONS, Migration, MigrationContext
from core.store.tinydb_store import TinyDBStore


def all_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.parent.name != "locks"
    }


def files_named(root: Path, pattern: str) -> list[Path]:
    return sorted(root.rglob(pattern))


async def seeded(root: Path) -> None:
    store = TinyDBStore(root)
    await store.open()
    await store.put_user(UserRecord(id="u1", identities=("telegram:1",)))
    await store.put_conversation(ConversationRecord(id="c1", scope="user:u1"))
    await store.append_messages([MessageRecord("m0", "c1", "user", "halo", 1.0)])
    await store.set_meta("k", "v")
    await store.close()


def failing(errno_code: int) -> Callable[..., Any]:
    def fail(*args: object) -> None:
        raise OSError(errno_code, os.strerror(errno_code))

    return fail


def half_then_disk_full(fd: int, data: memoryview) -> int:
    """Like a disk filling up mid-file: the first call writes half, the next one fails."""
    if len(data) > 1 and os.fstat(fd).st_size == 0:
        return os.write(fd, data[: len(data) // 2])
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        (FileOps(replace=failing(errno.EROFS), open_append=failing(errno.EROFS)), "read-only"),
        (FileOps(write=half_then_disk_full), "disk is full"),
    ],
    ids=["read-only", "disk-full"],
)
async def test_failed_write_raises_store_error_and_keeps_old_content(
    tmp_path: Path, ops: FileOps, message: str
) -> None:
    await seeded(tmp_path)
    before = all_files(tmp_path)
    store = TinyDBStore(tmp_path, ops=ops)
    await store.open()
    with pytest.raises(StoreError, match=message):
        await store.append_messages([MessageRecord("m1", "c1", "user", "lost", 2.0)])
    with pytest.raises(StoreError, match=message):
        await store.set_meta("k", "new")
    with pytest.raises(StoreError, match=message):
        await store.put_user(UserRecord(id="u1", identities=("telegram:1", "signal:x")))
    # The same instance still reads the old content (its cache forgot the failed writes)...
    assert [m.content for m in await store.get_messages("c1")] == ["halo"]
    assert await store.get_meta("k") == "v"
    assert await store.find_user("signal:x") is None
    await store.close()
    # ...and on disk nothing changed and no temp file was left behind.
    assert all_files(tmp_path) == before
    healthy = TinyDBStore(tmp_path)
    await healthy.open()
    [m] = await healthy.append_messages([MessageRecord("m1", "c1", "user", "kept", 2.0)])
    assert m.seq == 1


async def test_a_failing_flush_is_reported_and_a_failing_file_flush_changes_nothing(tmp_path: Path) -> None:
    """A file replaced is flushed before its rename; a message appended, by the batch's flush after."""
    await seeded(tmp_path)
    store = TinyDBStore(tmp_path, ops=FileOps(fsync=failing(errno.EIO), syncfs=failing(errno.EIO)))
    await store.open()
    with pytest.raises(StoreError, match="Input/output error"):
        await store.append_messages([MessageRecord("m1", "c1", "user", "unsure", 2.0)])
    with pytest.raises(StoreError, match="Input/output error"):
        await store.set_meta("k", "new")
    assert await store.get_meta("k") == "v"
    await store.close()


async def test_unwritable_data_folder_fails_open_with_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(StoreError, match="data folder"):
        await TinyDBStore(blocker / "data").open()


async def test_torn_temp_files_are_ignored_and_stale_ones_removed(tmp_path: Path) -> None:
    await seeded(tmp_path)
    store = TinyDBStore(tmp_path)
    conv_dir = store.layout.conversation_dir("c1")
    stale = conv_dir / ".m0000000000.json.4242.deadbeef.tmp"
    fresh = tmp_path / ".meta.json.4243.cafebabe.tmp"
    for path in (stale, fresh):
        path.write_bytes(b'{"messages": {"1": {"id": "m0", "conv')  # torn mid-write
    os.utime(stale, (1.0, 1.0))
    await store.open()
    assert not stale.exists()  # left by a crashed writer long ago
    assert fresh.exists()  # may belong to a live writer in the other process: left alone
    assert [m.content for m in await store.get_messages("c1")] == ["halo"]
    assert await store.get_meta("k") == "v"
    [m] = await store.append_messages([MessageRecord("m1", "c1", "user", "next", 2.0)])
    assert m.seq == 1


async def test_corrupt_file_is_reported(tmp_path: Path) -> None:
    await seeded(tmp_path)
    store = TinyDBStore(tmp_path)
    (tmp_path / "meta.json").write_text("{not json")
    await store.open()
    with pytest.raises(StoreError, match="corrupt"):
        await store.get_meta("k")


async def test_store_must_be_opened(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not open"):
        await TinyDBStore(tmp_path).get_meta("k")


async def test_initial_migration_is_recorded(tmp_path: Path) -> None:
    store = TinyDBStore(tmp_path)
    await store.open()
    assert await store.schema() == {"schema_version": SCHEMA_VERSION, "migrations": ["0001_initial", "0002_journals"]}
    assert MIGRATIONS[-1].version == SCHEMA_VERSION


async def test_a_schema_1_store_keeps_its_usage_and_intake_as_journals(tmp_path: Path) -> None:
    """Schema 1 kept usage sums and intake lines in TinyDB files; migration 0002 turns them into journals."""
    day = 86400 * 20000
    row = {"day": day, "model": "m", "prompt_tokens": 3, "completion_tokens": 4, "cost": 0.5}
    layout = TinyDBStore(tmp_path).layout
    old = {
        layout.user_usage_file("u1").with_suffix(".json"): {"days": {"1": row}},
        layout.global_usage_parts[0].with_suffix(".json"): {"days": {"1": row}},
        layout.chunk_file("c1", 0).with_suffix(".json"): {
            "messages": {"1": MessageRecord("m0", "c1", "user", "halo", 1.0, seq=0).to_dict()}
        },
        intake_file(tmp_path, "telegram:1").with_suffix(".json"): {
            "intake": {"1": IntakeRecord("telegram:7", "telegram:1", {"t": "hi"}, time.time(), seq=0).to_dict()}
        },
    }
    for path, tables in old.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(tables))
    (tmp_path / "schema.json").write_bytes(
        encode({"schema": {"1": {"schema_version": 1, "migrations": ["0001_initial"]}}})
    )
    store = TinyDBStore(tmp_path)
    await store.open()
    assert (await store.schema())["migrations"] == ["0001_initial", "0002_journals"]
    assert (await store.usage_totals("u1", day)).tokens == 7
    assert (await store.global_usage_totals(day)).tokens == 7
    assert [r.key for r in await store.unfinished("telegram")] == ["telegram:7"]
    assert [m.content for m in await store.get_messages("c1")] == ["halo"]
    assert not any(path.exists() for path in old)
    await store.add_usage(UsageRecord("u1", "c1", "m", 1, 1, 0.1, day + 5))
    assert (await store.usage_totals("u1", day)).tokens == 9
    await store.close()


async def test_a_journal_migration_cut_short_is_finished_by_the_next_start(tmp_path: Path) -> None:
    """The journals are written and made durable before any schema-1 file is removed: a migration
    that fails (or a crash) after some removals leaves a store the next start finishes."""
    layout = TinyDBStore(tmp_path).layout
    for i in range(3):
        chunk = layout.chunk_file(f"c{i}", 0).with_suffix(".json")
        chunk.parent.mkdir(parents=True, exist_ok=True)
        rows = [MessageRecord(f"m{j}", f"c{i}", "user", f"text {i}.{j}", 1.0, seq=j).to_dict() for j in range(2)]
        chunk.write_bytes(encode({"messages": {str(j + 1): row for j, row in enumerate(rows)}}))
    (tmp_path / "schema.json").write_bytes(
        encode({"schema": {"1": {"schema_version": 1, "migrations": ["0001_initial"]}}})
    )
    removals: list[Path] = []

    def second_removal_fails(path: str | Path) -> None:
        if len(removals) == 1:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        removals.append(Path(path))
        os.unlink(path)

    with pytest.raises(StoreError):
        await TinyDBStore(tmp_path, ops=FileOps(unlink=second_removal_fails)).open()
    assert len(removals) == 1  # every journal was written before the first old file went
    assert len(files_named(tmp_path, "m*.jsonl")) == 3
    store = TinyDBStore(tmp_path)
    await store.open()
    assert (await store.schema())["migrations"] == ["0001_initial", "0002_journals"]
    for i in range(3):
        assert [m.content for m in await store.get_messages(f"c{i}")] == [f"text {i}.0", f"text {i}.1"]
    assert not files_named(tmp_path, "m*.json")
    await store.close()


async def test_new_migration_runs_once_and_is_recorded(tmp_path: Path) -> None:
    await seeded(tmp_path)
    runs: list[Path] = []

    def add_flag(ctx: MigrationContext) -> None:
        runs.append(ctx.layout.root)
        ctx.ops.atomic_write(ctx.layout.root / "flag.json", b"{}")

    migrations = (*MIGRATIONS, Migration("0002_add_flag", SCHEMA_VERSION + 1, add_flag))
    for _ in range(3):
        store = TinyDBStore(tmp_path, migrations=migrations)
        await store.open()
        await store.close()
    assert runs == [tmp_path]
    store = TinyDBStore(tmp_path, migrations=migrations)
    await store.open()
    assert await store.schema() == {
        "schema_version": SCHEMA_VERSION + 1,
        "migrations": ["0001_initial", "0002_journals", "0002_add_flag"],
    }
    assert await store.get_meta("k") == "v"  # data untouched
    # An older Ferry, which does not know 0002, refuses the store instead of misreading it.
    with pytest.raises(StoreError, match="upgrade Ferry"):
        await TinyDBStore(tmp_path).open()


class RecordingOps(FileOps):
    """Writes normally and remembers which files were replaced."""

    def __init__(self, written: list[Path]) -> None:
        super().__init__()
        object.__setattr__(self, "_written", written)

    def atomic_write(self, path: Path, data: bytes, folders: set[Path] | None = None) -> None:
        self._written.append(path)  # type: ignore[attr-defined]
        super().atomic_write(path, data, folders)


async def test_storing_a_turn_touches_only_its_conversation_files(tmp_path: Path) -> None:
    written: list[Path] = []
    store = TinyDBStore(tmp_path, ops=RecordingOps(written))
    await store.open()
    for u in range(50):
        await store.put_user(UserRecord(id=f"u{u}", identities=(f"telegram:{u}",)))
        await store.put_conversation(ConversationRecord(id=f"c{u}", scope=f"user:u{u}"))
        await store.append_messages([MessageRecord(f"m{u}", f"c{u}", "user", "x", 1.0)])
    written.clear()
    [_user, pending] = await store.append_messages(
        [MessageRecord("q", "c7", "user", "hi", 5.0), MessageRecord("a", "c7", "assistant", "", 5.0)]
    )
    await store.update_message(MessageRecord("a", "c7", "assistant", "hello", 5.0, seq=pending.seq))
    layout = store.layout
    # No file replaced: the messages and the update are lines of the conversation's chunk, the scope
    # index's new key a line of its journal; nothing shared with other users.
    assert written == []
    assert [json.loads(line)["id"] for line in layout.chunk_file("c7", 0).read_bytes().splitlines()] == [
        "m7",
        "q",
        "a",
        "a",
    ]
    last = touches_file(layout.scope_file("user:u7")).read_bytes().splitlines()[-1]
    assert json.loads(last) == {"id": "c7", "updated_at": 5.0}


async def test_files_carry_no_identifiers_in_their_names(tmp_path: Path) -> None:
    await seeded(tmp_path)
    names = "\n".join(all_files(tmp_path))
    assert "u1" not in names and "telegram" not in names and "user:" not in names


async def test_returned_values_are_copies(tmp_path: Path) -> None:
    store = TinyDBStore(tmp_path)
    await store.open()
    await store.put_user(UserRecord(id="u1", extra={"k": {"v": 1}}))
    await store.set_meta("m", {"list": [1]})
    got = await store.get_user("u1")
    assert got is not None
    got.extra["k"]["v"] = 2
    meta = await store.get_meta("m")
    meta["list"].append(2)
    again = await store.get_user("u1")
    assert again is not None and again.extra == {"k": {"v": 1}}
    assert await store.get_meta("m") == {"list": [1]}


async def test_message_files_are_json_lines(tmp_path: Path) -> None:
    await seeded(tmp_path)
    store = TinyDBStore(tmp_path)
    [line] = store.layout.chunk_file("c1", 0).read_bytes().splitlines()
    assert json.loads(line)["content"] == "halo"


async def test_an_updated_message_is_appended_again_and_truncation_rewrites_the_chunk(tmp_path: Path) -> None:
    store = TinyDBStore(tmp_path)
    await store.open()
    await store.put_conversation(ConversationRecord(id="c1", scope="user:u1"))
    [_, a] = await store.append_messages(
        [MessageRecord("q", "c1", "user", "hi", 1.0), MessageRecord("a", "c1", "assistant", "", 1.0)]
    )
    await store.update_message(dataclasses.replace(a, content="hello"))
    assert [m.content for m in await store.get_messages("c1")] == ["hi", "hello"]
    assert len(store.layout.chunk_file("c1", 0).read_bytes().splitlines()) == 3
    await store.truncate_messages("c1", 1)
    assert [m.content for m in await store.get_messages("c1")] == ["hi"]
    assert len(store.layout.chunk_file("c1", 0).read_bytes().splitlines()) == 1
    [again] = await store.append_messages([MessageRecord("b", "c1", "assistant", "again", 2.0)])
    assert again.seq == 1 and [m.content for m in await store.get_messages("c1", last=1)] == ["again"]
    await store.close()


async def test_a_torn_tail_is_ignored_and_cut_by_the_next_append(tmp_path: Path) -> None:
    """A writer killed mid-append leaves part of a line that was never acknowledged."""
    await seeded(tmp_path)
    store = TinyDBStore(tmp_path)
    chunk = store.layout.chunk_file("c1", 0)
    chunk.write_bytes(chunk.read_bytes() + b'{"id":"torn","conv')
    await store.open()
    assert [m.id for m in await store.get_messages("c1")] == ["m0"]
    await store.append_messages([MessageRecord("m1", "c1", "user", "next", 2.0)])
    assert [m.id for m in await store.get_messages("c1")] == ["m0", "m1"]
    assert b"torn" not in chunk.read_bytes()
    await store.close()


async def test_bulk_layout_functions_write_what_the_store_writes(tmp_path: Path) -> None:
    """The bench's bulk loader relies on these functions being byte-faithful to the store."""
    store = TinyDBStore(tmp_path)
    await store.open()
    conv = ConversationRecord(id="c1", scope="user:u1")
    await store.put_conversation(conv)
    msgs = [MessageRecord(f"m{i}", "c1", "user", "kata " * (i % 50), float(i), seq=i) for i in range(400)]
    for m in msgs:
        await store.append_messages([m])
    expected = {m[0].seq: chunk_lines(m) for m in split_chunks(msgs)}
    assert len(expected) > 2
    layout = store.layout
    assert {p.name for p in layout.conversation_dir("c1").glob("m*.jsonl")} == {
        layout.chunk_file("c1", first).name for first in expected
    }
    for first, data in expected.items():
        assert layout.chunk_file("c1", first).read_bytes() == data
    assert layout.conversation_file("c1").read_bytes() == encode(conversation_tables(conv))
    # The index's ordering key is folded in from its touch journal now and then: newest in either.
    index = layout.scope_file("user:u1").read_bytes()
    folded = json.loads(index)["conversations"]["1"]["updated_at"]
    assert index == encode(scope_tables([ConversationRecord(id="c1", scope="user:u1", updated_at=folded)]))
    touches = [
        json.loads(line)["updated_at"] for line in touches_file(layout.scope_file("user:u1")).read_bytes().splitlines()
    ]
    assert max([folded, *touches]) == 399.0
