"""Append-only journal files: the TinyDB store's cheap writes for records changed several times a turn.

A journal is a file of JSON lines (one compact JSON object and ``\\n`` each). A change appends its
lines instead of replacing the file: no temporary file, no rename, no per-file fsync; the file's
data is made durable by the group commit with every other write of the batch (one ``syncfs``,
or an fsync of the file where there is none), before the operation returns.

A crash can only leave damage after the last acknowledged append (everything before it was
flushed): a torn line, or a tail of zeros. A reader therefore stops at the first line that is not
a whole JSON object, and the next writer cuts the file there before it appends. A journal is
compacted by replacing it whole (``FileOps.atomic_write``), like any other file of the store.

An append that fails (a full or read-only disk) is taken back and reported. One whose flush fails
is reported too, but its line may stay, as a rename whose folder flush failed may: the store
says it failed, and a reader may still find the change (never a torn one).

Parsed lines are cached by the file's bytes; a file that only grew since (an append, by any
process) has just its new lines parsed.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from core.store.tinydb_files import FileCache, FileOps, encode, read_bytes, store_error

JOURNAL_SUFFIX = ".jsonl"
T = TypeVar("T")


@dataclass(frozen=True)
class Lines:
    """A journal as read: its whole lines (shared with the cache: never mutate), and its bytes."""

    docs: tuple[dict[str, Any], ...]
    raw: bytes
    valid: int
    """Bytes of whole lines; anything after them is a crashed writer's unacknowledged tail."""


def _parse(raw: bytes, start: int) -> tuple[list[dict[str, Any]], int]:
    docs: list[dict[str, Any]] = []
    pos = start
    while True:
        end = raw.find(b"\n", pos)
        if end < 0:
            return docs, pos
        try:
            doc = json.loads(raw[pos:end])
        except ValueError:
            return docs, pos
        if not isinstance(doc, dict):
            return docs, pos
        docs.append(doc)
        pos = end + 1


def read_lines(path: Path, cache: FileCache) -> Lines:
    """The journal's whole lines (none when the file does not exist)."""
    raw = read_bytes(path) or b""
    hit = cache.get(path, raw)
    if isinstance(hit, Lines):
        return hit
    start = 0
    docs: tuple[dict[str, Any], ...] = ()
    old = cache.peek(path)
    if isinstance(old, Lines) and old.valid == len(old.raw) and raw.startswith(old.raw):
        start, docs = old.valid, old.docs  # it only grew: parse the new lines
    more, valid = _parse(raw, start)
    lines = Lines((*docs, *more), raw, valid)
    cache.put(path, raw, lines)
    return lines


def lines_bytes(docs: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(encode(d) + b"\n" for d in docs)


def append_lines(
    path: Path, before: Lines, docs: list[dict[str, Any]], ops: FileOps, cache: FileCache, flush: set[Path] | None
) -> None:
    """Append ``docs`` to the journal read as ``before`` (under its lock), cutting a torn tail first.

    With ``flush``, the file (and its folder when the file is new) is added for the group commit to
    make durable; without, both are flushed here.
    """
    data = lines_bytes(docs)
    # A file without a whole line is new, or was created by a writer killed before its flush: its
    # folder entry may not be durable yet either.
    created = before.valid == 0
    with _writing(path, cache):
        try:
            fd = ops.open_append(path)
        except FileNotFoundError:
            ops.makedirs(path.parent)
            for parent in (path.parent.parent, path.parent.parent.parent):  # as in FileOps.atomic_write
                _flush_path(parent, ops, flush if ops.syncfs is not None else None)
            fd = ops.open_append(path)
        try:
            if os.fstat(fd).st_size != before.valid:
                os.ftruncate(fd, before.valid)  # a crashed writer's tail (or none: then nothing changes)
            view = memoryview(data)
            while view:
                view = view[ops.write(fd, view) :]
            if flush is None:
                ops.fsync(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, before.valid)  # a failed append (a full disk) takes back what it wrote
            raise
        finally:
            os.close(fd)
    if flush is not None:
        flush.add(path)
    if created:
        _flush_path(path.parent, ops, flush)
    raw = before.raw[: before.valid] + data
    cache.put(path, raw, Lines((*before.docs, *docs), raw, len(raw)))


def rewrite_lines(
    path: Path, docs: list[dict[str, Any]], ops: FileOps, cache: FileCache, flush: set[Path] | None
) -> None:
    """Replace the journal whole with ``docs`` (compaction), atomically.

    Another process may append to the new file as soon as the lock is released, and its commit
    flushes only what it wrote: where one flush does not cover the whole file system (no
    ``syncfs``), the rename is made durable here, or that acknowledged line could go with it.
    """
    raw = lines_bytes(docs)
    with _writing(path, cache):
        ops.atomic_write(path, raw, flush if ops.syncfs is not None else None)
    cache.put(path, raw, Lines(tuple(docs), raw, len(raw)))


@contextlib.contextmanager
def _writing(path: Path, cache: FileCache) -> Iterator[None]:
    """A write of the journal: on failure its cached lines are forgotten, an OS error made clear."""
    try:
        yield
    except OSError as exc:
        cache.drop(path)
        raise store_error(exc, "write", path) from exc
    except BaseException:
        cache.drop(path)
        raise


def _flush_path(path: Path, ops: FileOps, flush: set[Path] | None) -> None:
    if flush is not None:
        flush.add(path)
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        ops.fsync(fd)
    finally:
        os.close(fd)


class Folds:
    """Values folded from journals line by line, kept between reads: a journal that grew since
    (an append, by any process) has only its new lines folded in.

    An entry is reused only while the journal's lines still start with the lines it folded (the
    same objects, or equal ones): a replaced file is folded again from its first line. Use it
    under the journal's lock; ``step`` updates the value in place, so the value is the caller's
    to read under that lock, never to keep.
    """

    def __init__(self, max_bytes: int) -> None:
        self._entries: OrderedDict[Path, tuple[tuple[dict[str, Any], ...], Any, int]] = OrderedDict()
        self._max = max_bytes  # of the journals folded: a value's size follows its journal's
        self._bytes = 0
        self._lock = threading.Lock()

    def fold(self, path: Path, lines: Lines, start: Callable[[], T], step: Callable[[T, dict[str, Any]], None]) -> T:
        docs = lines.docs
        with self._lock:
            hit = self._entries.get(path)
        if hit is not None and len(hit[0]) <= len(docs) and docs[: len(hit[0])] == hit[0]:
            done, value = len(hit[0]), hit[1]
        else:
            done, value = 0, start()
        for doc in docs[done:]:
            step(value, doc)
        with self._lock:
            old = self._entries.pop(path, None)
            if old is not None:
                self._bytes -= old[2]
            self._entries[path] = (docs, value, lines.valid)
            self._bytes += lines.valid
            while self._bytes > self._max and len(self._entries) > 1:
                _, (_, _, size) = self._entries.popitem(last=False)
                self._bytes -= size
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
