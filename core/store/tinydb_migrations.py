"""Named, append-only schema migrations of the TinyDB store.

``schema.json`` records ``schema_version`` and the names of the migrations applied, in order.
``TinyDBStore.open`` runs the pending ones under the store-wide lock and records each one as soon
as it has run. A migration must be idempotent: a crash after it ran and before it was recorded
runs it again. Never edit or reorder a shipped migration; append a new one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from core.store.base import StoreError
from core.store.tinydb_files import FileOps, read_bytes
from core.store.tinydb_journal import JOURNAL_SUFFIX, lines_bytes
from core.store.tinydb_layout import MESSAGE_TABLE, USAGE_TABLE, Layout


@dataclass(frozen=True)
class MigrationContext:
    """What a migration may touch: the store's files and the writer they go through."""

    layout: Layout
    ops: FileOps


@dataclass(frozen=True)
class Migration:
    """One schema step; ``version`` is the schema version the store has once it ran."""

    name: str
    version: int
    apply: Callable[[MigrationContext], None]
    alone: bool = False
    """Older releases write the files it rewrites: it runs only once no other process has the
    store open (an older process still running would go on writing them in their old form, where
    this release never reads)."""


def _initial(ctx: MigrationContext) -> None:
    layout = ctx.layout
    for folder in (
        layout.users_dir,
        layout.identities_dir,
        layout.scopes_dir,
        layout.conversations_dir,
        layout.usage_dir / "users",
    ):
        ctx.ops.makedirs(folder)


# Schema 1's TinyDB files that schema 2 keeps as journals: where they are, their table, their lines' order.
_AS_JOURNALS: tuple[tuple[str, str, Callable[[dict[str, Any]], Any]], ...] = (
    ("conversations/*/*/m*.json", MESSAGE_TABLE, lambda d: d["seq"]),
    ("usage/users/*/*.json", USAGE_TABLE, lambda d: (d["day"], d["model"])),
    ("usage/global/*.json", USAGE_TABLE, lambda d: (d["day"], d["model"])),
    ("intake/*/*/*.json", "intake", lambda d: d["seq"]),
)


def _journals(ctx: MigrationContext) -> None:
    """Message chunks, usage sums and intake lines become journals (``tinydb_journal``): a line per
    message, row or record.

    Each file's journal is written whole before the old file goes, so a crash in between leaves
    both, and the re-run writes the same journal again from the old file.
    """
    for pattern, table, order in _AS_JOURNALS:
        for old in sorted(ctx.layout.root.glob(pattern)):
            if old.name.startswith("."):
                continue  # a crashed writer's temporary file
            raw = read_bytes(old)
            try:
                docs = list(json.loads(raw).get(table, {}).values()) if raw else []
            except (ValueError, AttributeError) as exc:
                raise StoreError(f"corrupt store file {old}: {exc}") from exc
            ctx.ops.atomic_write(old.with_suffix(JOURNAL_SUFFIX), lines_bytes(sorted(docs, key=order)))
            ctx.ops.remove(old)


# The last migration's version is base.SCHEMA_VERSION (a test holds them together).
MIGRATIONS: tuple[Migration, ...] = (
    Migration("0001_initial", 1, _initial),
    Migration("0002_journals", 2, _journals, alone=True),
)


def pending(migrations: Sequence[Migration], applied: Sequence[str]) -> list[Migration]:
    """The migrations not yet applied, in order; refuses a store written by a newer Ferry."""
    known = {m.name for m in migrations}
    unknown = [name for name in applied if name not in known]
    if unknown:
        raise StoreError(
            f"the store was written by a newer Ferry (unknown migrations: {', '.join(unknown)}); upgrade Ferry"
        )
    done = set(applied)
    return [m for m in migrations if m.name not in done]


def check_version(stored_version: int, migrations: Sequence[Migration]) -> None:
    """Refuse a store whose schema is newer than these migrations reach."""
    known = max((m.version for m in migrations), default=0)
    if stored_version > known:
        raise StoreError(
            f"the store has schema version {stored_version}, this Ferry understands up to {known}; upgrade Ferry"
        )
