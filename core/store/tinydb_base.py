"""Plumbing of the TinyDB store: worker threads, lock stripes, TinyDB tables, the group commit.

The store is split by aggregate, each part a class on this one: ``tinydb_usage``, ``tinydb_conversations``
(conversations and messages), ``tinydb_users`` (users and identities) and ``tinydb_store`` (meta,
open and close, backup and restore; the class the app uses)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from tinydb import TinyDB
from tinydb.table import Document, Table

from core.store.base import (
    StoreError,
)
from core.store.batching import Batches, Call, run_calls
from core.store.group_commit import GroupCommit, LoopCommit
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
log = logging.getLogger(__name__)
# Worker threads of one store, for the operations that may block: files replaced whole (each flushed
# before its rename: a new person's user and conversation, settings), journal compactions, reads of
# many files. A turn's reads and appends run on the event loop instead (``TinyDBFiles._inline``).
# More threads did not help: on two cores 32 of them fought the event loop for the GIL.
WORKER_THREADS = 6
# Besides them, threads that only read (core/store/workers.py): a scan never waits for one of the
# six to come back from a write's flush.
READER_THREADS = 2
# What the folds keep, by the bytes of the journals they were folded from (see FileCache).
FOLDS_BYTES = 1024 * 1024


class TinyDBFiles:
    """The plumbing every part of the TinyDB store shares: worker threads, locks, tables, group commit.

    ``ops`` is the seam for the system calls that write (tests inject a full or read-only disk);
    ``migrations`` defaults to the shipped list (tests append one to prove it runs once).
    """

    READS_ON_LOOP = True
    """A turn's reads run on the event loop (``_inline``): started early, they only add a step
    (core/readahead.py)."""

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
        self._loop_commit: LoopCommit[Path] = LoopCommit(self._commit, "ferry-store-commit")
        self._pool: PriorityWorkers | None = None
        self._batches: Batches | None = None
        # Compactions left by operations run on the event loop to a worker thread, by file.
        self._compactions: dict[Path, Future[None]] = {}
        self._compactions_lock = threading.Lock()

    # plumbing

    @property
    def layout(self) -> Layout:
        """Where this store keeps its files."""
        return self._layout

    async def _run(self, fn: Callable[..., R], *args: Any) -> R:
        """A write that replaces files whole (each flushed before its rename), in a worker thread."""
        return await self._submit(WRITE, fn, *args)

    async def _scan(self, fn: Callable[..., R], *args: Any) -> R:
        """A read of many files (every user, every chat's intake), in a worker thread: ahead of
        every queued write, also taken by the threads kept for reads."""
        return await self._submit(READ, fn, *args, read_only=True)

    async def _read(self, fn: Callable[..., R], *args: Any) -> R:
        """A read of a turn (a few files, mostly cached): on the event loop (:meth:`_inline`)."""
        return await self._inline(fn, *args)

    async def _append(self, fn: Callable[..., R], *args: Any) -> R:
        """A write of a turn that only appends to journals: on the event loop (:meth:`_inline`)."""
        return await self._inline(fn, *args)

    async def _inline(self, fn: Callable[..., R], *args: Any) -> R:
        """Run the operation here, on the event loop; return once its writes are durable, waiting
        for the group commit without blocking the loop.

        A turn's operations (its reads, its journal appends) hold the GIL but for system calls on
        cached files, each a few microseconds. Run in worker threads, each of those calls handed the
        GIL to the event loop and waited to get it back: under issue 14's 50-chat bench, 112,000
        futex calls in ten seconds, and 14.8 ms of the bot's CPU an answer against 8.7 with the
        operations here (4,000 answers, 72 -> 109 a second). What may block (a file's fsync
        before its rename) stays in worker threads: these operations never replace a file whole,
        and leave their journals' compactions to them (:meth:`_compact_later`). They may wait
        here for a lock another thread or process holds, for the length of one operation; while
        a backup or a restore holds the whole store (minutes, for a large one), they run in a
        worker thread instead (``LockStripes.try_shared``).
        """
        locks = self._locks
        if locks is None:
            raise StoreError("the store is not open; call open() first")
        if not locks.try_shared():  # a backup or restore holds the store: wait in a worker thread
            return await self._submit(WRITE, fn, *args)
        unit = self._unit
        folders: set[Path] = set()
        unit.folders, unit.on_loop = folders, True
        error: BaseException | None = None
        try:
            value = fn(*args)
        except BaseException as exc:
            error = exc
        finally:
            unit.folders, unit.on_loop = None, False
            locks.release_shared()
        if folders:  # what did happen is made durable beside a failed call too
            try:
                await self._loop_commit.durable(folders)
            except Exception as exc:
                error = error or exc
        if error is not None:
            raise self._translated(error) or error
        return value

    def _on_loop(self) -> bool:
        """Whether this operation runs on the event loop (:meth:`_inline`): it may not flush."""
        return bool(getattr(self._unit, "on_loop", False))

    def _compact_later(self, path: Path, compact: Callable[[Path], None]) -> None:
        """Have a worker thread run ``compact(path)`` (a journal replaced whole: its fsync must not
        stall the loop); the operation appends meanwhile. At most one is queued per file; one that
        fails is logged, and the file's next append asks again."""
        with self._compactions_lock:
            if path in self._compactions:
                return
            future = self._executor().submit(LATER, self._guard, compact, path)
            self._compactions[path] = future

        def done(finished: Future[None]) -> None:
            with self._compactions_lock:
                self._compactions.pop(path, None)
            if (exc := finished.exception()) is not None:
                log.warning("could not compact %s: %s", path, exc)

        future.add_done_callback(done)

    async def _compacted(self) -> None:
        """Wait for the compactions queued so far (before the store closes)."""
        with self._compactions_lock:
            pending = list(self._compactions.values())
        if pending:
            await asyncio.wait([asyncio.wrap_future(f) for f in pending])

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
        """Write the file's one document: one file replaced. (TinyDB's ``upsert`` of a document
        not there yet replaced the file twice, an update finding nothing then the insert: each a
        flush, two of a new person's four.)"""
        table = self._table(path, name)
        if table.contains(doc_id=SINGLE_DOC_ID):
            table.update(doc, doc_ids=[SINGLE_DOC_ID])
        else:
            table.insert(Document(doc, doc_id=SINGLE_DOC_ID))

    def _sync_folders(self, folders: set[Path]) -> None:
        self._ops.sync_folders(folders, self._layout.root)

    def _forget(self, path: Path) -> None:
        self._cache.drop(path)
        self._ops.remove(path, self._flush_set())
