"""The embedded default store: TinyDB files in one data folder, shared by the bot processes.

Layout and file format: ``core/store/tinydb_layout.py``. Atomic writes, locks and the TinyDB
Storage: ``core/store/tinydb_files.py``; append-only journals: ``core/store/tinydb_journal.py``.
Each operation reads and rewrites (or appends to) only the few small files it concerns, under
their cross-process lock, and re-reads a file whenever its bytes changed, so two processes never
lose each other's updates. The file I/O runs in the store's worker threads, and an operation
returns once its writes are durable (``core/store/group_commit.py``).

Parts by aggregate: ``tinydb_users`` (users, identities), ``tinydb_conversations`` (conversations,
messages), ``tinydb_usage`` (usage sums), ``tinydb_intake`` (received messages) on the plumbing of
``tinydb_base``; this module adds meta,
open and close, backup and restore.

A turn appends to the conversation's newest message file and then to its scope index's journal of
ordering keys (no file of a turn is replaced); the conversation's ``message_count`` and
``updated_at`` are read from the message files, so they never disagree with them. An operation
that touches several files writes them in an order that keeps every crash state readable (a scope
index entry before the conversation that points at it; readers check the conversation record
itself, so a stale index entry is ignored).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tinydb import where

from core.store.base import (
    StoreError,
)
from core.store.tinydb_files import (
    LOCK_STRIPES,
    TEMP_SUFFIX,
    LockStripes,
    read_bytes,
    store_error,
    sweep_temp_files,
)
from core.store.tinydb_intake import IntakeFiles
from core.store.tinydb_layout import (
    META_TABLE,
    SCHEMA_TABLE,
)
from core.store.tinydb_migrations import MigrationContext, check_version, pending
from core.store.tinydb_users import UserFiles
from core.store.workers import WRITE

log = logging.getLogger(__name__)

WAIT_NOTICE_SECONDS = 30.0
"""How far apart the log lines saying that an update of the store waits for older processes."""


class TinyDBStore(UserFiles, IntakeFiles):
    """The ``Store`` on TinyDB files under ``data_dir``; safe for several processes and threads.

    Its parts by aggregate are the classes it is built from (see ``core/store/tinydb_base.py``).
    """

    # open and close

    async def open(self) -> None:
        """Create the folder if needed, run pending migrations, clear temp files of crashed writers.

        A migration that rewrites files older releases still write (``Migration.alone``) waits
        until no other process has the store open. During an upgrade the other bot's older process
        may still be running (one process restarted before the other, or Docker Compose replacing
        both at once): what it wrote in the old form after the migration, messages and answers and
        the records of messages in flight, this release would never read. The wait is logged every
        ``WAIT_NOTICE_SECONDS`` with what to do, and can be cancelled (a SIGTERM stops the bot).
        """
        waiting_since: float | None = None
        told = 0.0
        while not await asyncio.wrap_future(self._executor().submit(WRITE, self._guard, self._open)):
            now = time.monotonic()
            if waiting_since is None:
                waiting_since = now
            if now - told >= WAIT_NOTICE_SECONDS:
                told = now
                log.warning(
                    "The store in %s is open in another process, most likely an older Ferry still running. "
                    "This version updates the store's files only once nothing older can write them: stop "
                    "every older ferry process (with Docker Compose, `docker compose up -d` replaces them all). "
                    "Waiting.",
                    self._layout.root,
                )
            # Two new processes waiting for each other to close the file never keep meeting.
            await asyncio.sleep(random.uniform(0.5, 1.5))
        if waiting_since is not None:
            log.warning(
                "No other process has the store in %s open any more: updated it after waiting %.0f s",
                self._layout.root, time.monotonic() - waiting_since,
            )  # fmt: skip

    def _open(self) -> bool:
        """Open the store; False (nothing changed) while a migration waits for other processes."""
        root = self._layout.root
        try:
            self._ops.makedirs(root)
            self._ops.makedirs(self._layout.locks_dir)
        except OSError as exc:
            raise store_error(exc, "create the data folder", root) from exc
        locks = LockStripes(self._layout.locks_dir)
        try:
            with locks.hold_global():
                self._locks = locks
                migrated = self._migrate(wait_for_others=True)
                if migrated:
                    sweep_temp_files(root, self._ops)
        except BaseException:
            self._locks = None
            locks.close()
            raise
        if not migrated:
            # Closed while waiting: a process that waits to migrate must not look, to another one
            # doing the same, like a process using the store.
            self._locks = None
            locks.close()
        return migrated

    def _migrate(self, *, wait_for_others: bool) -> bool:
        """Run the pending migrations; False, running none, when ``wait_for_others`` and one must
        run alone (``Migration.alone``) while another process has the store open. A restore does
        not ask: it holds every lock, and the other processes are this release's."""
        path = self._layout.schema_file
        state = self._single(path, SCHEMA_TABLE) or {"schema_version": 0, "migrations": []}
        applied = list(state["migrations"])
        version = int(state["schema_version"])
        check_version(version, self._migrations)
        todo = pending(self._migrations, applied)
        if wait_for_others and version and any(m.alone for m in todo):  # a new store has no older writer
            assert self._locks is not None
            alone = self._locks.alone()
            if alone is False:
                return False
            if alone is None:
                log.warning(
                    "Cannot tell on this system whether an older Ferry still has the store in %s open; "
                    "updating its files now. Every older ferry process must be stopped first.",
                    self._layout.root,
                )
        ctx = MigrationContext(self._layout, self._ops)
        for migration in todo:
            migration.apply(ctx)
            applied.append(migration.name)
            version = max(version, migration.version)
            self._put_single(path, SCHEMA_TABLE, {"schema_version": version, "migrations": applied})
        return True

    async def close(self) -> None:
        """Close lock files and forget cached files; every write is already durable."""
        await self._compacted()
        self._loop_commit.shutdown()
        locks, self._locks = self._locks, None
        if locks is not None:
            locks.close()
        self._batches = None
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown()  # nothing runs: every operation was awaited
        self._cache.clear()
        self._folds.clear()

    async def schema(self) -> dict[str, Any]:
        """The recorded schema version and applied migration names."""
        return await self._read(self._schema)

    def _schema(self) -> dict[str, Any]:
        with self._locked(self._layout.schema_file):
            state = self._single(self._layout.schema_file, SCHEMA_TABLE) or {}
        return copy.deepcopy(state)

    # meta

    async def get_meta(self, key: str) -> Any:
        return await self._read(self._get_meta, key)

    def _get_meta(self, key: str) -> Any:
        with self._locked(self._layout.meta_file):
            return self._get_meta_unlocked(key)

    def _get_meta_unlocked(self, key: str) -> Any:
        doc = self._table(self._layout.meta_file, META_TABLE).get(where("key") == key)
        return copy.deepcopy(doc["value"]) if isinstance(doc, dict) else None

    async def set_meta(self, key: str, value: Any) -> None:
        """Set a JSON-compatible value; ``None`` deletes the key."""
        await self._run(self._set_meta, key, value)

    async def update_meta(self, key: str, change: Callable[[Any], Any]) -> Any:
        """Replace a value with ``change(old)`` under the meta file's cross-process lock."""
        return await self._run(self._update_meta, key, change)

    def _update_meta(self, key: str, change: Callable[[Any], Any]) -> Any:
        with self._locked(self._layout.meta_file):
            value = change(self._get_meta_unlocked(key))
            self._set_meta_unlocked(key, value)
        return copy.deepcopy(value)

    def _set_meta(self, key: str, value: Any) -> None:
        with self._locked(self._layout.meta_file):
            self._set_meta_unlocked(key, value)

    def _set_meta_unlocked(self, key: str, value: Any) -> None:
        table = self._table(self._layout.meta_file, META_TABLE)
        if value is None:
            if table.contains(where("key") == key):
                table.remove(where("key") == key)
        else:
            table.upsert({"key": key, "value": copy.deepcopy(value)}, where("key") == key)

    # operator tasks

    @contextmanager
    def _everything_locked(self) -> Iterator[None]:
        """Every lock of the store, in the order ``open`` takes them: a moment between operations."""
        assert self._locks is not None
        # One key per stripe (stripe_of reads the first four hex digits).
        keys = [f"{i:04x}" for i in range(LOCK_STRIPES)]
        with self._locks.hold_global(), self._locks.hold(*keys):
            yield

    def _data_files(self, root: Path) -> Iterator[Path]:
        """The store's files under ``root``, relative to it (no locks, no temporary files)."""
        for folder, dirs, files in os.walk(root):
            if Path(folder) == root and self._layout.locks_dir.name in dirs:
                dirs.remove(self._layout.locks_dir.name)
            for name in files:
                if not (name.startswith(".") and name.endswith(TEMP_SUFFIX)):
                    yield (Path(folder) / name).relative_to(root)

    async def backup(self, dest: Path) -> None:
        """Copy every file to the new folder ``dest`` while holding all the store's locks.

        Writers in every process wait for the copy, so it is one consistent moment of the store:
        everything written before the backup began, and no half of any later operation.
        """
        await self._run(self._backup, Path(dest))

    def _backup(self, dest: Path) -> None:
        if dest.exists() and any(dest.iterdir()):
            raise StoreError(f"the backup folder {dest} is not empty")
        # Into a temporary sibling first, renamed when complete: a backup folder is always whole.
        tmp = dest.with_name(f".{dest.name}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with self._everything_locked():
            for rel in self._data_files(self._layout.root):
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self._layout.root / rel, target)
                with open(target, "rb+") as f:
                    os.fsync(f.fileno())
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)

    async def restore(self, src: Path) -> None:
        """Replace the whole store with a backup folder's files, holding all the store's locks."""
        await self._run(self._restore, Path(src))

    def _restore(self, src: Path) -> None:
        if not (src / self._layout.schema_file.name).is_file():
            raise StoreError(f"{src} is not a Ferry backup (it has no {self._layout.schema_file.name})")
        root = self._layout.root
        with self._everything_locked():
            for entry in list(root.iterdir()):
                if entry == self._layout.locks_dir:
                    continue
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            for rel in self._data_files(src):
                raw = read_bytes(src / rel)
                if raw is not None:
                    self._ops.atomic_write(root / rel, raw)
            self._cache.clear()
            # A backup of an older Ferry is brought up to date like any store at open.
            self._migrate(wait_for_others=False)
