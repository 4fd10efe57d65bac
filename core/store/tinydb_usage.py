"""The TinyDB store's usage sums: a file per user and everyone's sums in 16 parts."""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any

from tinydb import where
from tinydb.table import Document

from core.store.base import (
    UsageRecord,
    UsageTotals,
)
from core.store.tinydb_base import TinyDBFiles
from core.store.tinydb_layout import (
    USAGE_TABLE,
    utc_day,
)


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


class UsageFiles(TinyDBFiles):
    """Usage: per-user and everyone's per-UTC-day, per-model sums."""

    async def add_usage(self, usage: UsageRecord) -> None:
        """Add to the user's and the global sums of the usage's UTC day and model."""
        await self._finishing(self._add_usage, usage)

    def _add_usage(self, usage: UsageRecord) -> None:
        self._add_to_day(self._layout.user_usage_file(usage.user_id), usage)
        self._add_to_day(self._layout.global_usage_part(usage.user_id), usage)

    def _add_to_day(self, path: Path, usage: UsageRecord) -> None:
        day = utc_day(usage.at)
        with self._locked(path):
            table = self._table(path, USAGE_TABLE)
            row = table.get((where("day") == day) & (where("model") == usage.model))
            if isinstance(row, Document):
                table.update(
                    {
                        "prompt_tokens": row["prompt_tokens"] + usage.prompt_tokens,
                        "completion_tokens": row["completion_tokens"] + usage.completion_tokens,
                        "cost": row["cost"] + usage.cost,
                    },
                    doc_ids=[row.doc_id],
                )
            else:
                table.insert(
                    {
                        "day": day,
                        "model": usage.model,
                        "prompt_tokens": usage.prompt_tokens,
                        "completion_tokens": usage.completion_tokens,
                        "cost": usage.cost,
                    }
                )

    async def usage_totals(self, user_id: str, since: float) -> UsageTotals:
        """The user's usage on UTC days starting at or after ``since`` (a UTC midnight)."""
        return await self._read(self._usage_totals, since, self._layout.user_usage_file(user_id))

    async def global_usage_totals(self, since: float) -> UsageTotals:
        """Everyone's usage on UTC days starting at or after ``since`` (a UTC midnight)."""
        paths = [self._layout.global_usage_file, *self._layout.global_usage_parts]
        return await self._read(self._usage_totals, since, *paths)

    def _usage_totals(self, since: float, *paths: Path) -> UsageTotals:
        docs: list[dict[str, Any]] = []
        for path in paths:
            with self._locked(path):
                docs.extend(dict(d) for d in self._table(path, USAGE_TABLE).all())
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
            rows = [dict(d) for d in self._table(src, USAGE_TABLE).all()]
            if not rows:
                return
            # Added before the source goes: a crash between over-counts, never under.
            table = self._table(dst, USAGE_TABLE)
            current = {(d["day"], d["model"]): d for d in table.all() if isinstance(d, Document)}
            for row in rows:
                old = current.get((row["day"], row["model"]))
                if old is None:
                    table.insert(row)
                else:
                    table.update(
                        {n: old[n] + row[n] for n in ("prompt_tokens", "completion_tokens", "cost")},
                        doc_ids=[old.doc_id],
                    )
            self._forget(src)

    def _delete_usage(self, user_id: str) -> None:
        path = self._layout.user_usage_file(user_id)
        with self._locked(path):
            days = [dict(d) for d in self._table(path, USAGE_TABLE).all()]
            # Deleted before the global sums are reduced: a crash between over-counts, never under.
            self._forget(path)
        if not days:
            return
        minus: dict[tuple[int, str], dict[str, Any]] = {(d["day"], d["model"]): d for d in days}

        def subtract(row: MutableMapping[str, Any]) -> None:
            d = minus.get((row["day"], row["model"]))
            if d is not None:
                for name in ("prompt_tokens", "completion_tokens", "cost"):
                    row[name] -= d[name]

        # Taken from the user's part of everyone's sums. Sums an older store kept in global.json stay
        # there, so the part may go below zero while the total over all the files stays right.
        gpath = self._layout.global_usage_part(user_id)
        with self._locked(gpath):
            table = self._table(gpath, USAGE_TABLE)
            for day, model in minus:
                cond = (where("day") == day) & (where("model") == model)
                if not table.contains(cond):
                    table.insert({"day": day, "model": model, "prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0})
            table.update(subtract, where("day").one_of(sorted({d["day"] for d in days})))
            empty = (where("prompt_tokens") == 0) & (where("completion_tokens") == 0)
            if table.contains(empty):
                table.remove(empty)
