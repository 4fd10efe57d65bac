"""The TinyDB store's usage sums: a file per user and everyone's sums in 16 parts.

Each file is a journal (``tinydb_journal``) of changes to a day's and model's sums: an answer's
usage appends a line to two files instead of rewriting them; the sums are the lines added up.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from core.store.base import (
    UsageRecord,
    UsageTotals,
)
from core.store.tinydb_base import TinyDBFiles
from core.store.tinydb_files import FileCache
from core.store.tinydb_journal import append_lines, read_lines, rewrite_lines
from core.store.tinydb_layout import (
    USAGE_TABLE,
    utc_day,
)

COUNTS = ("prompt_tokens", "completion_tokens", "cost")
# Lines a usage journal may hold beyond its rows before it is replaced by its sums.
SUPERSEDED_LINES = 64


def _totals(docs: Sequence[dict[str, Any]], since: float) -> UsageTotals:
    by_model: dict[str, tuple[int, int, float]] = {}
    p = c = 0
    cost = 0.0
    for d in sorted(docs, key=lambda d: (d["day"], d["model"])):
        if d["day"] < since:
            continue
        p += d["prompt_tokens"]
        c += d["completion_tokens"]
        cost += d["cost"]
        mp, mc, mcost = by_model.get(d["model"], (0, 0, 0.0))
        by_model[d["model"]] = (mp + d["prompt_tokens"], mc + d["completion_tokens"], mcost + d["cost"])
    return UsageTotals(prompt_tokens=p, completion_tokens=c, cost=cost, by_model=by_model)


def _sums(docs: Iterable[dict[str, Any]]) -> dict[tuple[int, str], dict[str, Any]]:
    """The journal's lines (changes of a day's and model's sums) added up, a row per day and model."""
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    for d in docs:
        row = rows.get((d["day"], d["model"]))
        if row is None:
            rows[(d["day"], d["model"])] = dict(d)
        else:
            for name in COUNTS:
                row[name] += d[name]
    return rows


def day_rows(path: Path) -> list[dict[str, Any]]:
    """A usage journal's rows (day, model, sums), read without the store (a store copy's source)."""
    return list(_sums(read_lines(path, FileCache(1)).docs).values())


def _row(usage: UsageRecord) -> dict[str, Any]:
    return {
        "day": utc_day(usage.at),
        "model": usage.model,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cost": usage.cost,
    }


class UsageFiles(TinyDBFiles):
    """Usage: per-user and everyone's per-UTC-day, per-model sums, each file a journal of changes."""

    async def add_usage(self, usage: UsageRecord) -> None:
        """Add to the user's and the global sums of the usage's UTC day and model."""
        await self._append(self._add_usage, usage)

    def _add_usage(self, usage: UsageRecord) -> None:
        row = _row(usage)
        for path in (self._layout.user_usage_file(usage.user_id), self._layout.global_usage_part(usage.user_id)):
            with self._locked(path):
                self._add_rows(path, [row])

    def _add_rows(self, path: Path, rows: list[dict[str, Any]]) -> None:
        """Append the changes (under the file's lock); compact the journal once it holds many more
        lines than rows, replacing it whole by its sums (so a crash never counts a change twice)."""
        lines = read_lines(path, self._cache)
        total = len(lines.docs) + len(rows)
        if total > SUPERSEDED_LINES and total > len(_sums([*lines.docs, *rows])) + SUPERSEDED_LINES:
            if not self._on_loop():
                self._compact_rows(path, [*lines.docs, *rows])
                return
            self._compact_later(path, self._compact_usage)  # the rows are appended meanwhile
        append_lines(path, lines, rows, self._ops, self._cache, self._flush_set())

    def _compact_usage(self, path: Path) -> None:
        with self._locked(path):
            self._compact_rows(path, list(read_lines(path, self._cache).docs))

    def _compact_rows(self, path: Path, docs: list[dict[str, Any]]) -> None:
        """Replace the journal by its sums (a crash never counts a change twice)."""
        kept = [r for r in _sums(docs).values() if any(r[n] for n in COUNTS)]
        rewrite_lines(path, kept, self._ops, self._cache, self._flush_set())

    async def usage_totals(self, user_id: str, since: float) -> UsageTotals:
        """The user's usage on UTC days starting at or after ``since`` (a UTC midnight)."""
        return await self._read(self._usage_totals, since, self._layout.user_usage_file(user_id))

    async def global_usage_totals(self, since: float) -> UsageTotals:
        """Everyone's usage on UTC days starting at or after ``since`` (a UTC midnight)."""
        return await self._read(self._usage_totals, since, *self._layout.global_usage_parts)

    def _usage_totals(self, since: float, *paths: Path) -> UsageTotals:
        docs: list[dict[str, Any]] = []
        if self._layout.global_usage_parts[0] in paths:  # sums as stores before the parts kept them
            with self._locked(self._layout.global_usage_file):
                docs.extend(dict(d) for d in self._table(self._layout.global_usage_file, USAGE_TABLE).all())
        for path in paths:
            with self._locked(path):
                docs.extend(read_lines(path, self._cache).docs)
        return _totals(docs, since)

    async def move_usage(self, from_user: str, to_user: str) -> None:
        """Add one user's daily sums to another's and delete them (the global sums stay as they are)."""
        if from_user != to_user:
            await self._run(self._move_usage, from_user, to_user)

    def _move_usage(self, from_user: str, to_user: str) -> None:
        src = self._layout.user_usage_file(from_user)
        dst = self._layout.user_usage_file(to_user)
        assert self._locks is not None
        with self._locks.hold(self._layout.lock_key(src), self._layout.lock_key(dst)):
            rows = list(_sums(read_lines(src, self._cache).docs).values())
            if not rows:
                return
            # Added before the source goes: a crash between over-counts, never under.
            self._add_rows(dst, rows)
            self._forget(src)

    def _delete_usage(self, user_id: str) -> None:
        path = self._layout.user_usage_file(user_id)
        with self._locked(path):
            days = list(_sums(read_lines(path, self._cache).docs).values())
            # Deleted before the global sums are reduced: a crash between over-counts, never under.
            self._forget(path)
        if not days:
            return
        # Taken from the user's part of everyone's sums. Sums an older store kept in global.json stay
        # there, so the part may go below zero while the total over all the files stays right.
        gpath = self._layout.global_usage_part(user_id)
        with self._locked(gpath):
            self._add_rows(gpath, [{**d, **{n: -d[n] for n in COUNTS}} for d in days])
