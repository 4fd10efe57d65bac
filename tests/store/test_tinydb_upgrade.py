"""Upgrading a TinyDB store while an older Ferry process still has it open.

Schema 2 keeps messages, usage sums and intake records as journals; schema 1 kept them in TinyDB
files, and an older process still running after the upgrade goes on writing those. Migration
0002 therefore waits until no other process has the store open (``Migration.alone``).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.store.base import IntakeRecord, MessageRecord, UserRecord
from core.store.tinydb_files import encode
from core.store.tinydb_intake import intake_file
from core.store.tinydb_store import TinyDBStore

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="leases are Linux's")

OLDER_PROCESS = textwrap.dedent(
    """
    import json, os, sys
    root, chunk = sys.argv[1], sys.argv[2]
    # Kept open from the store's open to its close: LockStripes._fd (core/store/tinydb_files.py)
    # in every release since fa9a552, schema 1's included (a4c1b4a, the last before schema 2).
    os.makedirs(os.path.join(root, "locks"), exist_ok=True)
    lock = os.open(os.path.join(root, "locks", "global.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    print("open", flush=True)
    for line in sys.stdin:
        if line.strip() == "answer":
            # Schema 1 appended a message by rewriting the chunk, a TinyDB file, whole (temp
            # file, fsync, rename): what the older process reads there is what it keeps.
            try:
                with open(chunk, "rb") as f:
                    tables = json.loads(f.read())
            except FileNotFoundError:
                tables = {"messages": {}}
            rows = tables.setdefault("messages", {})
            seq = len(rows)
            rows[str(seq + 1)] = {
                "id": "m-late", "conversation_id": "c1", "role": "assistant", "content": "late answer",
                "created_at": 2.0, "status": "ok", "seq": seq,
            }
            tmp = chunk + ".tmp"
            with open(tmp, "wb") as f:
                f.write(json.dumps(tables).encode())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, chunk)
            print("answered", flush=True)
        elif line.strip() == "exit":
            break
    """
)


def schema_1_store(root: Path) -> Path:
    """A store as schema 1 left it: one conversation's message chunk and a chat's intake file, as
    TinyDB files. Returns the chunk file."""
    layout = TinyDBStore(root).layout
    chunk = layout.chunk_file("c1", 0).with_suffix(".json")
    old = {
        chunk: {"messages": {"1": MessageRecord("m0", "c1", "user", "halo", 1.0, seq=0).to_dict()}},
        intake_file(root, "telegram:1").with_suffix(".json"): {
            "intake": {"1": IntakeRecord("telegram:7", "telegram:1", {"t": "hi"}, time.time(), seq=0).to_dict()}
        },
    }
    for path, tables in old.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(tables))
    (root / "schema.json").write_bytes(encode({"schema": {"1": {"schema_version": 1, "migrations": ["0001_initial"]}}}))
    return chunk


class OlderProcess:
    """An older Ferry's process using the store: it holds the store-wide lock file open, as every
    release did, and writes schema 1's files when told to answer."""

    def __init__(self, root: Path, chunk: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", OLDER_PROCESS, str(root), str(chunk)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.said() == "open"

    def said(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def tell(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.tell("exit")
            self.proc.wait(10)


Older = Callable[[Path], OlderProcess]
"""Starts an older process on the test's store, using the given chunk file."""


@pytest.fixture
def older(tmp_path: Path) -> Iterator[Older]:
    started: list[OlderProcess] = []

    def start(chunk: Path) -> OlderProcess:
        started.append(OlderProcess(tmp_path, chunk))
        return started[-1]

    yield start
    for proc in started:
        proc.proc.kill()
        proc.proc.wait()


def schema_of(root: Path) -> dict[str, object]:
    return dict(json.loads((root / "schema.json").read_bytes())["schema"]["1"])


async def test_the_journal_migration_waits_until_the_older_process_is_gone(
    tmp_path: Path, older: Older, caplog: pytest.LogCaptureFixture
) -> None:
    chunk = schema_1_store(tmp_path)
    old = older(chunk)
    store = TinyDBStore(tmp_path)
    with caplog.at_level(logging.WARNING, logger="core.store.tinydb_store"):
        opening = asyncio.create_task(store.open())
        await asyncio.sleep(2)
        assert not opening.done()
        assert schema_of(tmp_path)["schema_version"] == 1  # nothing changed under the older process
        assert any("older Ferry still running" in r.getMessage() for r in caplog.records)
        # The older process answers meanwhile, in schema 1's form: it is not lost.
        old.tell("answer")
        assert old.said() == "answered"
        old.stop()
        await asyncio.wait_for(opening, 30)
    assert schema_of(tmp_path)["migrations"] == ["0001_initial", "0002_journals"]
    assert [m.content for m in await store.get_messages("c1")] == ["halo", "late answer"]
    assert [r.key for r in await store.unfinished("telegram")] == ["telegram:7"]
    assert not chunk.exists()
    assert any("updated it after waiting" in r.getMessage() for r in caplog.records)
    await store.close()


async def test_a_migrated_store_opens_at_once_beside_other_processes(tmp_path: Path, older: Older) -> None:
    """The wait is for an update of the store only: the other bot running never holds a start."""
    store = TinyDBStore(tmp_path)
    await store.open()
    await store.put_user(UserRecord(id="u1", identities=("telegram:1",)))
    await store.close()
    other = older(tmp_path / "unused.json")  # the other bot's process, as it holds the store
    again = TinyDBStore(tmp_path)
    await asyncio.wait_for(again.open(), 10)
    assert (await again.get_user("u1")) is not None
    await again.close()
    other.stop()


async def test_a_new_store_is_made_at_once_beside_a_process_starting_on_it(tmp_path: Path, older: Older) -> None:
    other = older(tmp_path / "unused.json")  # a process that has opened the lock file, not yet the schema
    store = TinyDBStore(tmp_path)
    await asyncio.wait_for(store.open(), 10)
    assert schema_of(tmp_path)["migrations"] == ["0001_initial", "0002_journals"]
    await store.close()
    other.stop()


async def test_a_cancelled_wait_changes_nothing(tmp_path: Path, older: Older) -> None:
    """A bot stopped while it waits (SIGTERM) leaves the store as it was, and starts later."""
    chunk = schema_1_store(tmp_path)
    old = older(chunk)
    store = TinyDBStore(tmp_path)
    opening = asyncio.create_task(store.open())
    await asyncio.sleep(1.5)
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening
    assert chunk.exists()
    assert schema_of(tmp_path)["schema_version"] == 1
    old.stop()
    store = TinyDBStore(tmp_path)
    await asyncio.wait_for(store.open(), 30)
    assert [m.content for m in await store.get_messages("c1")] == ["halo"]
    await store.close()


NEW_PROCESS = textwrap.dedent(
    """
    import asyncio, sys
    from core.store.tinydb_store import TinyDBStore

    async def main():
        store = TinyDBStore(sys.argv[1])
        await store.open()
        print([m.content for m in await store.get_messages("c1")], flush=True)
        await store.close()

    asyncio.run(main())
    """
)


def test_two_upgraded_processes_starting_together_migrate_once(tmp_path: Path) -> None:
    """Both bots of the new release start at once on a schema-1 store: neither waits for the other
    for good (each closes the lock file while it waits), and the migration runs once."""
    schema_1_store(tmp_path)
    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-c", NEW_PROCESS, str(tmp_path)]
    procs = [subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs == ["['halo']", "['halo']"]
    assert schema_of(tmp_path)["migrations"] == ["0001_initial", "0002_journals"]


async def test_where_the_system_cannot_tell_the_migration_runs_and_says_so(
    tmp_path: Path, older: Older, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    chunk = schema_1_store(tmp_path)
    old = older(chunk)
    monkeypatch.delattr(fcntl, "F_SETLEASE")
    store = TinyDBStore(tmp_path)
    with caplog.at_level(logging.WARNING, logger="core.store.tinydb_store"):
        await asyncio.wait_for(store.open(), 10)
    assert any("Cannot tell" in r.getMessage() for r in caplog.records)
    assert [m.content for m in await store.get_messages("c1")] == ["halo"]
    await store.close()
    old.stop()
