"""Low-level file work for the TinyDB store: atomic writes, a TinyDB Storage, and lock stripes.

A file is only ever replaced whole: the new content goes to a temporary file in the same folder,
which is flushed and fsynced, renamed over the target with ``os.replace`` and made durable by
fsyncing the folder. A reader therefore sees either the old or the new content, never a torn file,
even after ``kill -9`` or a full disk.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import secrets
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import lock_descriptor, unlock_descriptor
from tinydb.storages import Storage

from core.store.base import StoreError

TEMP_SUFFIX = ".tmp"
# A temporary file lives for milliseconds; one older than this was left by a crashed writer.
STALE_TEMP_SECONDS = 60.0
LOCK_STRIPES = 256
LOCK_TIMEOUT_SECONDS = 60.0
# The parsed files kept (FileCache), by their bytes on disk; parsed, they take several times that
# (at 8 MB the bot's memory still reached 180 MB). 2 MB holds the files of the 50-chat bench's
# people active at any moment: 4,000 answers peaked at 114 MB, at no more CPU an answer than 4 MB.
CACHE_BYTES = 2 * 1024 * 1024


def _fsync_dir(path: Path, fsync: Callable[[int], None]) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fsync(fd)
    finally:
        os.close(fd)


def load_syncfs() -> Callable[[int], None] | None:
    """Linux's ``syncfs``: one call makes everything written to a file system durable; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        call = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None

    def syncfs(fd: int) -> None:
        if call(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    return syncfs


@dataclass(frozen=True)
class FileOps:
    """The system calls the store writes through; tests inject failing ones (disk full, read-only).

    Only the calls that can fail on a full or read-only disk are seams; reads go straight to the OS.
    """

    write: Callable[[int, memoryview], int] = os.write
    fsync: Callable[[int], None] = os.fsync
    replace: Callable[[str | Path, str | Path], None] = os.replace
    unlink: Callable[[str | Path], None] = os.unlink
    makedirs: Callable[[Path], None] = field(default=lambda p: p.mkdir(parents=True, exist_ok=True))
    # Opens a journal file to append to (``tinydb_journal``), creating it when missing.
    open_append: Callable[[Path], int] = field(
        default=lambda p: os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    )
    # One flush for a whole batch of folders; None flushes each folder (other systems, or tests).
    syncfs: Callable[[int], None] | None = field(default_factory=load_syncfs)

    def atomic_write(self, path: Path, data: bytes, folders: set[Path] | None = None) -> None:
        """Replace ``path`` with ``data`` durably: temp file, fsync, rename, fsync the folder.

        With ``folders``, the folder's fsync is left to the caller (added to the set): the content
        is complete on disk before the rename either way, so the file is never torn; only the
        rename waits, to be made durable with other writers' in one group commit.
        """
        folder = path.parent
        tmp = folder / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileNotFoundError:  # the file's shard folder does not exist yet
            self.makedirs(folder)
            # New folders are entries in their parents: make those durable too (two levels of shards),
            # with the batch where one flush covers the file system (``syncfs``): another writer's
            # commit into the new folder then covers them as well. Elsewhere each is flushed now.
            for parent in (folder.parent, folder.parent.parent):
                if folders is not None and self.syncfs is not None:
                    folders.add(parent)
                else:
                    _fsync_dir(parent, self.fsync)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[self.write(fd, view) :]
                self.fsync(fd)
            finally:
                os.close(fd)
            self.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if folders is None:
            _fsync_dir(folder, self.fsync)
        else:
            folders.add(folder)

    def remove(self, path: Path, folders: set[Path] | None = None) -> None:
        """Delete a file if it exists and make the deletion durable (or add its folder to ``folders``)."""
        try:
            self.unlink(path)
        except FileNotFoundError:
            return
        if folders is None:
            _fsync_dir(path.parent, self.fsync)
        else:
            folders.add(path.parent)

    def sync_folders(self, folders: Collection[Path], root: Path) -> None:
        """Make the entries of ``folders`` (renames, deletions) under ``root`` durable, and the data
        of the journal files among them (``tinydb_journal``: appended, not renamed).

        With ``syncfs``, one call on the file system of ``root`` covers them all, whatever their
        number: the group commit's one flush per batch. Otherwise each folder or file is fsynced.
        """
        if not folders:
            return
        if self.syncfs is not None:
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
            try:
                self.syncfs(fd)
            finally:
                os.close(fd)
            return
        for folder in folders:
            try:
                fd = os.open(folder, os.O_RDONLY)
            except FileNotFoundError:
                continue  # deleted since (a removed conversation): nothing left in it to make durable
            try:
                self.fsync(fd)
            finally:
                os.close(fd)


# One encoder for every write: json.dumps with options builds a new one per call (a fifth of an
# encode of a message line).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode(data: Any) -> bytes:
    """The on-disk serialisation of one TinyDB file or journal line (compact UTF-8 JSON)."""
    return _ENCODER.encode(data).encode("utf-8")


def store_error(exc: OSError, action: str, path: Path) -> StoreError:
    """A clear message for an operating-system failure."""
    reason = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is used up",
        errno.EROFS: "the data folder is on a read-only file system",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
    }.get(exc.errno or 0, exc.strerror or str(exc))
    return StoreError(f"could not {action} {path}: {reason}")


class FileCache:
    """Parsed file contents keyed by path, reused only while the file's bytes are unchanged.

    The bytes are re-read and compared on every access, so a change by another process is always
    seen (stat times are too coarse and inodes are reused); only the JSON parse is saved.

    Bounded by the bytes of the files it holds, not by their number: a count let the cache of a
    bot with a few hundred people hold thousands of full message files (their parsed form is
    several times their bytes), and ``ferry telegram``'s memory grew from 100 to over 200 MB in
    the 50-chat bench's first 6,000 answers. The least recently used entries go first; the
    newest one always stays.
    """

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self._entries: OrderedDict[Path, tuple[bytes, Any]] = OrderedDict()
        self._max = max_bytes
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """Bytes of the files held."""
        return self._bytes

    def get(self, path: Path, raw: bytes) -> Any:
        with self._lock:
            hit = self._entries.get(path)
            if hit is not None and hit[0] == raw:
                self._entries.move_to_end(path)
                return hit[1]
        return None

    def put(self, path: Path, raw: bytes, data: Any) -> None:
        with self._lock:
            old = self._entries.pop(path, None)
            if old is not None:
                self._bytes -= len(old[0])
            self._entries[path] = (raw, data)
            self._bytes += len(raw)
            while self._bytes > self._max and len(self._entries) > 1:
                _, (gone, _) = self._entries.popitem(last=False)
                self._bytes -= len(gone)

    def peek(self, path: Path) -> Any:
        """What was cached for ``path`` whatever its bytes are now (a journal that grew reuses it)."""
        with self._lock:
            hit = self._entries.get(path)
        return None if hit is None else hit[1]

    def drop(self, path: Path) -> None:
        with self._lock:
            old = self._entries.pop(path, None)
            if old is not None:
                self._bytes -= len(old[0])

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


class AtomicJSONStorage(Storage):
    """A TinyDB Storage that never tears its file: every write replaces it atomically.

    Must be used under the file's lock; the data returned by ``read`` may be the cached object,
    which TinyDB mutates before calling ``write``, so a failed write forgets the cache entry.
    """

    def __init__(self, path: Path, ops: FileOps, cache: FileCache, folders: set[Path] | None = None) -> None:
        self._path = path
        self._ops = ops
        self._cache = cache
        self._folders = folders

    def read(self) -> dict[str, dict[str, Any]] | None:
        raw = read_bytes(self._path)
        if raw is None:
            return None
        cached = self._cache.get(self._path, raw)
        if cached is not None:
            return cached
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise StoreError(f"corrupt store file {self._path}: {exc}") from exc
        self._cache.put(self._path, raw, data)
        return data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        try:
            raw = encode(data)
            self._ops.atomic_write(self._path, raw, self._folders)
        except BaseException as exc:
            self._cache.drop(self._path)
            if isinstance(exc, OSError):
                raise store_error(exc, "write", self._path) from exc
            raise
        self._cache.put(self._path, raw, data)

    def close(self) -> None:
        return None


def read_bytes(path: Path) -> bytes | None:
    """A file's content, or None when it does not exist.

    Every store access reads its file whole (see :class:`FileCache`): through the descriptor, one
    ``read`` of the size ``fstat`` gives (more if the file grew meanwhile), at half the CPU of a
    buffered ``open().read()``.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise store_error(exc, "read", path) from exc
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size + 1)
        if len(data) <= size:  # a regular file reads short only at its end
            return data
        parts = [data]
        while more := os.read(fd, max(size, 1 << 16)):
            parts.append(more)
        return b"".join(parts)
    except OSError as exc:
        raise store_error(exc, "read", path) from exc
    finally:
        os.close(fd)


class LockStripes:
    """Cross-process locks: a fixed set of lock files, each guarded in-process by a thread lock.

    A data file maps to a stripe by hash, so the number of lock files does not grow with the data.
    Callers hold one stripe at a time (or take several in sorted order), so there is no deadlock.
    The lock files stay open and are locked with filelock's descriptor primitive (``flock`` on
    Unix): ``FileLock`` reopens its file on every acquire, which cost more than the rest of a turn.
    """

    def __init__(self, folder: Path, stripes: int = LOCK_STRIPES, timeout: float = LOCK_TIMEOUT_SECONDS) -> None:
        self._folder = folder
        self._stripes = stripes
        self._timeout = timeout
        self._thread_locks = [threading.Lock() for _ in range(stripes + 1)]
        self._fds: dict[int, int] = {}
        self._pid = _PID[0]
        self._guard = threading.Lock()
        self._shared_fd = -1  # the store-wide lock file opened again, for try_shared
        self._shared_pid = -1

    def _path(self, index: int) -> Path:
        return self._folder / ("global.lock" if index == self._stripes else f"{index:03d}.lock")

    def _fd(self, index: int) -> int:
        if self._pid == _PID[0]:
            fd = self._fds.get(index)
            if fd is not None:
                return fd
        with self._guard:
            if self._pid != _PID[0]:
                # A forked child must not share its parent's open lock files (flock is per open file).
                self._fds.clear()
                self._pid = _PID[0]
            fd = self._fds.get(index)
            if fd is None:
                path = self._path(index)
                try:
                    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                except OSError as exc:
                    raise store_error(exc, "open the lock file", path) from exc
                self._fds[index] = fd
            return fd

    def stripe_of(self, key: str) -> int:
        """The stripe guarding ``key`` (a hex hash string)."""
        return int(key[:4], 16) % self._stripes

    def hold(self, *keys: str) -> contextlib.AbstractContextManager[None]:
        """Hold the stripes for these hash keys (sorted, so two holders never wait on each other)."""
        if len(keys) == 1:  # nearly every operation: no generator, no exit stack (a turn takes ~15)
            return _Stripe(self, self.stripe_of(keys[0]))
        return self._hold_all(sorted({self.stripe_of(k) for k in keys}))

    @contextlib.contextmanager
    def _hold_all(self, indexes: list[int]) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for i in indexes:
                stack.enter_context(_Stripe(self, i))
            yield

    def hold_global(self) -> contextlib.AbstractContextManager[None]:
        """The store-wide lock taken by ``open`` for migrations."""
        return _Stripe(self, self._stripes)

    def try_shared(self) -> bool:
        """Take the store-wide lock shared, without waiting; False while a process holds it whole
        (a backup, a restore or a migration: minutes, for a large store).

        For the operations run on the event loop: one that found it held runs in a worker thread
        instead, so the loop never waits for a backup (every stripe is taken for its length). The
        lock is taken on an open file of its own: flock locks belong to an open file, and the
        store-wide lock's own descriptor may be held by a worker thread of this process.
        Release with :meth:`release_shared`; one holder at a time (the event loop's thread).
        """
        if self._shared_pid != _PID[0]:
            path = self._path(self._stripes)
            try:
                self._shared_fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise store_error(exc, "open the lock file", path) from exc
            self._shared_pid = _PID[0]
        try:
            fcntl.flock(self._shared_fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in _CONTENDED:
                return False
            raise store_error(exc, "lock", self._path(self._stripes)) from exc
        return True

    def release_shared(self) -> None:
        fcntl.flock(self._shared_fd, fcntl.LOCK_UN)

    def alone(self) -> bool | None:
        """Whether no other process has the store open; None where the system cannot tell.

        Every Ferry process keeps the store-wide lock file open from its store's ``open`` to its
        ``close``, and so did every release since the lock files stayed open (``fa9a552``, before
        schema 2): another open description of that file is another process using the store.
        Linux tells through a write lease, which it grants only on a file nobody else has open
        (fcntl(2), ``F_SETLEASE``); the lease is given back at once. Elsewhere, and where the file
        system or the file's owner refuses leases, the answer is None. Ask while holding the
        store-wide lock (``hold_global``) and before :meth:`try_shared` opened the file again.
        """
        setlease = getattr(fcntl, "F_SETLEASE", None)
        if setlease is None:
            return None
        fd = self._fd(self._stripes)
        try:
            fcntl.fcntl(fd, setlease, fcntl.F_WRLCK)
        except OSError as exc:
            return False if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK) else None
        fcntl.fcntl(fd, setlease, fcntl.F_UNLCK)
        return True

    def _acquire(self, index: int) -> int:
        """Take stripe ``index`` (its thread lock, then its lock file); returns the file's descriptor."""
        lock = self._thread_locks[index]
        lock.acquire()
        try:
            fd = self._fd(index)
            if not lock_descriptor(fd, blocking=False):
                deadline = time.monotonic() + self._timeout
                while not lock_descriptor(fd, blocking=False):
                    if time.monotonic() > deadline:
                        raise StoreError(f"timed out waiting for the store lock {self._path(index)}")
                    time.sleep(0.0005)
        except BaseException:
            lock.release()
            raise
        return fd

    def _release(self, index: int, fd: int) -> None:
        try:
            unlock_descriptor(fd)
        finally:
            self._thread_locks[index].release()

    def close(self) -> None:
        """Close the lock files (no lock is held between operations)."""
        with self._guard:
            if self._pid == _PID[0]:
                for fd in self._fds.values():
                    os.close(fd)
            self._fds.clear()
            if self._shared_pid == _PID[0]:
                os.close(self._shared_fd)
            self._shared_pid = -1


class _Stripe:
    """Holding one lock stripe, as a context manager."""

    __slots__ = ("_fd", "_index", "_locks")

    def __init__(self, locks: LockStripes, index: int) -> None:
        self._locks = locks
        self._index = index
        self._fd = -1

    def __enter__(self) -> None:
        self._fd = self._locks._acquire(self._index)

    def __exit__(self, *exc: object) -> None:
        self._locks._release(self._index, self._fd)


# What flock reports for a lock held elsewhere: EWOULDBLOCK, or EACCES on some file systems (as
# filelock's own non-blocking lock, which the stripes use, takes it).
_CONTENDED = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES})


# This process's id, kept current in a forked child: comparing it costs no system call (a lock
# stripe checks it at every hold, and ``os.getpid`` is one).
_PID = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


def sweep_temp_files(root: Path, ops: FileOps, older_than: float = STALE_TEMP_SECONDS) -> int:
    """Delete temporary files left by crashed writers; returns how many were removed."""
    removed = 0
    cutoff = time.time() - older_than
    for folder, _dirs, files in os.walk(root):
        for name in files:
            if name.startswith(".") and name.endswith(TEMP_SUFFIX):
                path = Path(folder) / name
                try:
                    if path.stat().st_mtime <= cutoff:
                        ops.unlink(path)
                        removed += 1
                except FileNotFoundError:
                    continue
    return removed
