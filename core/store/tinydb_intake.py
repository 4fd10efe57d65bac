"""The TinyDB store's intake: one small journal per chat holding its line of received messages.

::

    intake/<platform>/<h:2>/<h>.jsonl    a chat's records, a line per state (``tinydb_journal``)

A record is appended (durable through the group commit like every other write) before the
messenger is told the message arrived, and appended again, whole, when it is answered, shown and
delivered: a key's last line is its state. A mark thus writes one short line instead of
rewriting the chat's file (four rewrites a turn before). The journal is compacted (replaced by one
line per record) when older states pile up. A delivered record keeps only its key; it is
forgotten once older than ``INTAKE_RETENTION`` or beyond the chat's newest ``INTAKE_KEEP`` (and
dropped from the file at the next compaction), and a file holding nothing else is deleted at the
next start, so a file stays small and the platform's folder only as wide as its chats of the last
day: recovery at start reads that folder alone.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.store.base import INTAKE_RETENTION, IntakeRecord, advance, stale_intake
from core.store.tinydb_base import TinyDBFiles
from core.store.tinydb_journal import JOURNAL_SUFFIX, Lines, append_lines, read_lines, rewrite_lines
from core.store.tinydb_layout import key_hash


def intake_dir(root: Path, platform: str) -> Path:
    """The folder of a platform's chat files (a name that is not a plain word is hashed)."""
    name = platform if platform.isalnum() else key_hash(platform)
    return root / "intake" / name


@functools.lru_cache(maxsize=16384)
@functools.lru_cache(maxsize=16384)
def intake_file(root: Path, chat: str) -> Path:
    """The file of one chat's line."""
    h = key_hash(chat)
    return intake_dir(root, chat.partition(":")[0]) / h[:2] / f"{h}{JOURNAL_SUFFIX}"


# Lines a chat's journal may hold beyond its records (older states of them) before it is compacted;
# and forgotten (stale) records it may still carry: compaction rewrites the file, so it is rare.
SUPERSEDED_LINES = 64
STALE_KEPT = 32


def _add_record(by_key: dict[str, IntakeRecord], doc: dict[str, Any]) -> None:
    by_key[doc["key"]] = IntakeRecord.from_dict(doc)


class IntakeFiles(TinyDBFiles):
    """Received messages, a journal per chat, until their answers are delivered."""

    def _by_key(self, path: Path, lines: Lines) -> dict[str, IntakeRecord]:
        """Each key's newest state (a later line of a key replaces the earlier ones). A chat keeps
        hundreds of delivered records: only lines new since the last read are converted. Read
        under the file's lock, never kept."""
        return self._folds.fold(path, lines, dict, _add_record)

    async def record(self, rec: IntakeRecord) -> IntakeRecord | None:
        """Add the message to its chat's file, durably; None when its key is there already."""
        return await self._append(self._record, rec)

    def _record(self, rec: IntakeRecord) -> IntakeRecord | None:
        path = intake_file(self._layout.root, rec.chat)
        with self._locked(path):
            lines = read_lines(path, self._cache)
            state = self._by_key(path, lines)
            gone = stale_intake(list(state.values()), rec.received_at)
            if rec.key in state and rec.key not in gone:
                return None
            seq = max((r.seq for r in state.values()), default=-1) + 1
            stored = IntakeRecord.from_dict({**rec.to_dict(), "seq": seq})
            # A stale record of the same key stays forgotten: the new line replaces it.
            append_lines(path, lines, [stored.to_dict()], self._ops, self._cache, self._flush_set())
            if len(lines.docs) - len(state) > SUPERSEDED_LINES or len(gone) > STALE_KEPT:
                if self._on_loop():
                    self._compact_later(path, self._compact_intake)
                else:
                    self._compact_intake_unlocked(path)
            return stored

    def _compact_intake(self, path: Path) -> None:
        with self._locked(path):
            self._compact_intake_unlocked(path)

    def _compact_intake_unlocked(self, path: Path) -> None:
        """Each record once, without the delivered ones no messenger sends again."""
        state = self._by_key(path, read_lines(path, self._cache))
        if not state:
            return
        gone = stale_intake(list(state.values()), max(r.received_at for r in state.values()))
        kept = sorted((r for k, r in state.items() if k not in gone), key=lambda r: r.seq)
        rewrite_lines(path, [r.to_dict() for r in kept], self._ops, self._cache, self._flush_set())

    async def unfinished(self, platform: str) -> list[IntakeRecord]:
        """Every chat file of the platform read once; a file left with only old delivered records goes."""
        return await self._scan(self._unfinished, platform)

    def _unfinished(self, platform: str) -> list[IntakeRecord]:
        lines: list[list[IntakeRecord]] = []
        for path in _chat_files(intake_dir(self._layout.root, platform)):
            with self._locked(path):
                docs = list(self._by_key(path, read_lines(path, self._cache)).values())
                if docs and all(d.status == "delivered" for d in docs):
                    newest = max(d.received_at for d in docs)
                    if newest < time.time() - INTAKE_RETENTION:
                        self._forget(path)
                    continue
            line = sorted((d for d in docs if d.status != "delivered"), key=lambda d: d.seq)
            if line:
                lines.append(line)
        lines.sort(key=lambda line: line[0].received_at)
        return [rec for line in lines for rec in line]

    # The marks are journal appends, run on the event loop (``TinyDBFiles._inline``).
    async def mark_answered(self, chat: str, key: str, answer: list[dict[str, Any]], ref: str | None = None) -> None:
        await self._append(self._mark, chat, key, lambda r: advance(r, "answered", answer=answer, ref=ref))

    async def mark_shown(self, chat: str, key: str, ref: str) -> None:
        await self._append(self._mark, chat, key, lambda r: advance(r, "received", ref=ref))

    async def mark_delivered(self, chat: str, key: str, ref: str | None) -> None:
        await self._append(self._mark, chat, key, lambda r: advance(r, "delivered", ref=ref))

    def _mark(self, chat: str, key: str, change: Callable[[IntakeRecord], IntakeRecord]) -> None:
        path = intake_file(self._layout.root, chat)
        with self._locked(path):
            lines = read_lines(path, self._cache)
            old = self._by_key(path, lines).get(key)
            if old is None:
                return
            new = change(old)
            if new != old:  # one line appended: the record's new state
                append_lines(path, lines, [new.to_dict()], self._ops, self._cache, self._flush_set())


def _chat_files(folder: Path) -> list[Path]:
    """The chat files under a platform's folder (no temporary files)."""
    out: list[Path] = []
    if not folder.is_dir():
        return out
    for shard in os.scandir(folder):
        if shard.is_dir():
            out.extend(
                Path(f.path)
                for f in os.scandir(shard.path)
                if f.name.endswith(JOURNAL_SUFFIX) and not f.name.startswith(".")
            )
    return sorted(out)
