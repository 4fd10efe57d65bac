"""Named, append-only schema migrations of the TinyDB store.

``schema.json`` records ``schema_version`` and the names of the migrations applied, in order.
``TinyDBStore.open`` runs the pending ones under the store-wide lock and records each one as soon
as it has run. A migration must be idempotent: a crash after it ran and before it was recorded
runs it again. Never edit or reorder a shipped migration; append a new one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.store.base import StoreError
from core.store.tinydb_files import FileOps
from core.store.tinydb_layout import Layout


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


# The last migration's version is base.SCHEMA_VERSION (a test holds them together).
MIGRATIONS: tuple[Migration, ...] = (Migration("0001_initial", 1, _initial),)


def pending(migrations: Sequence[Migration], applied: Sequence[str]) -> list[Migration]:
    """The migrations not yet applied, in order; refuses a store written by a newer Ferry."""
    known = {m.name for m in migrations}
    unknown = [name for name in applied if name not in known]
    if unknown:
        raise StoreError(
            f"the store was written by a newer Ferry (unknown migrations: {', '.join(unknown)}); "
            "upgrade Ferry"
        )
    done = set(applied)
    return [m for m in migrations if m.name not in done]


def check_version(stored_version: int, migrations: Sequence[Migration]) -> None:
    """Refuse a store whose schema is newer than these migrations reach."""
    known = max((m.version for m in migrations), default=0)
    if stored_version > known:
        raise StoreError(
            f"the store has schema version {stored_version}, this Ferry understands up to {known}; "
            "upgrade Ferry"
        )
