"""Named, append-only schema migrations of the TinyDB store.

``schema.json`` records ``schema_version`` and the names of the migrations applied, in order.
``TinyDBStore.open`` runs the pending ones under the store-wide lock and records each one as soon
as it has run. A migration must be idempotent: a crash after it ran and before it was recorded
runs it again. Never edit or reorder a shipped migration; append a new one.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
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

    Every journal is written and made durable before any old file goes, so a crash in between
    leaves both, and the re-run writes the same journals again from the old files. Where Linux's
    ``syncfs`` makes the whole file system durable at once, the journals are written without a
    flush each and made durable together, then the old files removed together: the bots waited
    for three flushes a file (2,000 conversations of 20 messages: 4.8 to 5.2 s here, now 2.3 to 3.0).
    """
    # Each journal's own flush is left to the one syncfs below (a torn journal before it is written
    # again from its old file); without syncfs every file is flushed as it is written.
    writes = ctx.ops
    if ctx.ops.syncfs is not None:
        writes = copy.copy(ctx.ops)  # the same writer (a subclass's too), but for the flush
        object.__setattr__(writes, "fsync", _flushed_later)
    renamed: set[Path] = set()
    converted: list[Path] = []
    for pattern, table, order in _AS_JOURNALS:
        for old in sorted(ctx.layout.root.glob(pattern)):
            if old.name.startswith("."):
                continue  # a crashed writer's temporary file
            raw = read_bytes(old)
            try:
                docs = list(json.loads(raw).get(table, {}).values()) if raw else []
            except (ValueError, AttributeError) as exc:
                raise StoreError(f"corrupt store file {old}: {exc}") from exc
            writes.atomic_write(old.with_suffix(JOURNAL_SUFFIX), lines_bytes(sorted(docs, key=order)), renamed)
            converted.append(old)
    ctx.ops.sync_folders(renamed, ctx.layout.root)
    removed: set[Path] = set()
    for old in converted:
        ctx.ops.remove(old, removed)
    ctx.ops.sync_folders(removed, ctx.layout.root)


def _flushed_later(fd: int) -> None:
    """A file's flush left to the ``syncfs`` that covers the whole file system (``_journals``)."""


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
