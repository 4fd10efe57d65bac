"""Plumbing of the TinyDB store: worker threads, lock stripes, TinyDB tables, the group commit.

The store is split by aggregate, each part a class on this one: ``tinydb_usage``, ``tinydb_conversations``
(conversations and messages), ``tinydb_users`` (users and identities) and ``tinydb_store`` (meta,
open and close, backup and restore; the class the app uses)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from tinydb import TinyDB
from tinydb.table import Document, Table

from core.store.base import (
    StoreError,
)
from core.store.batching import Batches, Call, run_calls
from core.store.group_commit import GroupCommit
from core.store.tinydb_files import (
    AtomicJSONStorage,
    FileCache,
    FileOps,
    LockStripes,
    store_error,
)
from core.store.tinydb_journal import Folds
from core.store.tinydb_layout import (
    CHUNK_BYTES,
    CHUNK_SIZE,
    SINGLE_DOC_ID,
    Layout,
)
from core.store.tinydb_migrations import MIGRATIONS, Migration
from core.store.workers import LATER, READ, WRITE, PriorityWorkers

R = TypeVar("R")
# Worker threads of one store. More threads did not help: on two cores 32 of them fought the event
# loop for the GIL (the 50 x 4 bench lost 25% of its answers/s and the loop's own sends came later).
WORKER_THREADS = 6
# Besides them, threads that only read (core/store/workers.py): a turn's reads before its model
# request no longer wait for one of the six to come back from a write's flush.
READER_THREADS = 2
# What the folds keep, by the bytes of the journals they were folded from (see FileCache).
FOLDS_BYTES = 1024 * 1024


class TinyDBFiles:
    """The plumbing every part of the TinyDB store shares: worker threads, locks, tables, group commit.

    ``ops`` is the seam for the system calls that write (tests inject a full or read-only disk);
    ``migrations`` defaults to the shipped list (tests append one to prove it runs once).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        ops: FileOps | None = None,
        migrations: Sequence[Migration] = MIGRATIONS,
        chunk_size: int = CHUNK_SIZE,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        self._layout = Layout(Path(data_dir))
        self._ops = ops or FileOps()
        self._migrations = tuple(migrations)
        self._chunk_size = chunk_size
        self._chunk_bytes = chunk_bytes
        self._cache = FileCache()
        # What the store derives from journals, line by line: records beside the parsed lines the
        # cache holds, so fewer entries (the chats and conversations active now).
        self._folds = Folds(FOLDS_BYTES)
        self._locks: LockStripes | None = None
        # The folders an operation's writes left to the group commit, per worker thread.
        self._unit = threading.local()
        self._commit: GroupCommit[Path] = GroupCommit(self._sync_folders)
        self._pool: PriorityWorkers | None = None
        self._batches: Batches | None = None

    # plumbing

    @property
    def layout(self) -> Layout:
        """Where this store keeps its files."""
        return self._layout

    async def _run(self, fn: Callable[..., R], *args: Any) -> R:
        """A write a turn waits for, in a worker thread."""
        return await self._submit(WRITE, fn, *args)

    async def _read(self, fn: Callable[..., R], *args: Any) -> R:
        """A read: ahead of every queued write (a turn's model request waits for its reads), and
        also taken by the threads kept for reads while the others wait for their writes' flushes."""
        return await self._submit(READ, fn, *args, read_only=True)

    async def _finishing(self, fn: Callable[..., R], *args: Any) -> R:
        """A write between the model's last piece and the final message (the answer, its usage):
        first in line with the reads, as the person is waiting to see it."""
        return await self._submit(READ, fn, *args)

    async def _later(self, fn: Callable[..., R], *args: Any) -> R:
        """A write nobody waits for to be shown anything: behind every other queued operation."""
        return await self._submit(LATER, fn, *args)

    async def _submit(self, priority: int, fn: Callable[..., R], *args: Any, read_only: bool = False) -> R:
        if self._locks is None:
            raise StoreError("the store is not open; call open() first")
        loop = asyncio.get_running_loop()
        batches = self._batches
        if batches is None or batches.loop is not loop:
            batches = self._batches = Batches(loop, self._send)
        result: R = await batches.add(priority, read_only, fn, args)
        return result

    def _send(self, priority: int, read_only: bool, calls: list[Call], hand_back: Callable[[list[Call]], None]) -> None:
        """One worker item for a loop turn's calls of one kind (``core/store/batching.py``)."""
        if self._locks is None:
            raise StoreError("the store is not open; call open() first")
        self._executor().submit(priority, self._guard_all, calls, hand_back, read_only=read_only)

    def _executor(self) -> PriorityWorkers:
        """The store's own worker threads, so its operations never queue behind other libraries'
        blocking calls in the loop's default pool (and those never wait for the store's fsyncs).
        """
        if self._pool is None:
            self._pool = PriorityWorkers(WORKER_THREADS + READER_THREADS, "ferry-store", READER_THREADS)
        return self._pool

    def _guard(self, fn: Callable[..., R], *args: Any) -> R:
        """Run one operation in this thread; return once its writes are durable (see :meth:`_guard_all`)."""
        done: list[Call] = []
        self._guard_all([Call(fn, args, None)], done.extend)
        if done[0].error is not None:
            raise done[0].error
        result: R = done[0].value
        return result

    def _guard_all(self, calls: list[Call], hand_back: Callable[[list[Call]], None]) -> None:
        """Run calls one after another in this thread; hand their outcomes back once their renames,
        deletions and appends are durable.

        Their writes leave the flushes to the group commit, which runs after the calls released
        their locks and joins them with concurrent operations' (one pass for many turns); what did
        happen is made durable beside a failed call too.
        """
        folders: set[Path] = set()
        self._unit.folders = folders
        try:
            run_calls(calls)
        finally:
            self._unit.folders = None
        try:
            self._commit.durable(folders)
        except BaseException as exc:
            for call in calls:
                call.error = call.error or exc
        for call in calls:
            call.error = self._translated(call.error)
        hand_back(calls)

    def _translated(self, exc: BaseException | None) -> BaseException | None:
        """An operating system error as the store's error (others as they are)."""
        if exc is None or isinstance(exc, StoreError) or not isinstance(exc, OSError):
            return exc
        error = store_error(exc, "access", Path(exc.filename or self._layout.root))
        error.__cause__ = exc
        return error

    @contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        assert self._locks is not None
        with self._locks.hold(self._layout.lock_key(path)):
            yield

    def _flush_set(self) -> set[Path] | None:
        """What this thread's operation leaves to the group commit to flush (None outside one)."""
        folders: set[Path] | None = getattr(self._unit, "folders", None)
        return folders

    def _table(self, path: Path, name: str) -> Table:
        """A TinyDB table in ``path``; use it only while holding the file's lock."""
        folders = self._flush_set()
        db = TinyDB(storage=lambda: AtomicJSONStorage(path, self._ops, self._cache, folders))
        return db.table(name, cache_size=0)

    def _single(self, path: Path, name: str) -> dict[str, Any] | None:
        doc = self._table(path, name).get(doc_id=SINGLE_DOC_ID)
        return dict(doc) if isinstance(doc, dict) else None

    def _put_single(self, path: Path, name: str, doc: dict[str, Any]) -> None:
        self._table(path, name).upsert(Document(doc, doc_id=SINGLE_DOC_ID))

    def _sync_folders(self, folders: set[Path]) -> None:
        self._ops.sync_folders(folders, self._layout.root)

    def _forget(self, path: Path) -> None:
        self._cache.drop(path)
        self._ops.remove(path, self._flush_set())
