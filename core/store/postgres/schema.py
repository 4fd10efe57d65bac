"""Named, append-only schema migrations of the PostgreSQL store.

The table ``schema_migrations`` records each applied migration's name and the schema version it
reached. ``PostgresStore.open`` applies the pending ones inside one transaction holding an advisory
lock, so several processes starting at once apply each migration exactly once, and it refuses a
schema written by a newer Ferry, as the TinyDB store does. Never edit or reorder a shipped
migration; append a new one. Versions count this backend's own steps (the TinyDB store's intake
needed no migration, its files simply appear), so they run ahead of ``base.SCHEMA_VERSION``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import AsyncConnection

from core.store.base import StoreError

# One key for "migrating this schema", mixed with the schema's name so two schemas in one
# database (a test per schema) never wait for each other.
LOCK_NAMESPACE = "ferry:migrate:"


@dataclass(frozen=True)
class Migration:
    """One schema step: its name, the version the schema has once it ran, and its SQL."""

    name: str
    version: int
    statements: tuple[str, ...]


INITIAL = Migration(
    "0001_initial",
    1,
    (
        """CREATE TABLE users (
            id text PRIMARY KEY,
            identities text[] NOT NULL DEFAULT '{}',
            display_name text,
            status text NOT NULL,
            is_admin boolean NOT NULL,
            lang text,
            model text,
            instructions text,
            created_at double precision NOT NULL,
            extra jsonb NOT NULL DEFAULT '{}'
        )""",
        # The record keeps its own identities (as written); this index says who owns one now.
        "CREATE TABLE identities (identity text PRIMARY KEY, user_id text NOT NULL)",
        "CREATE INDEX identities_user ON identities (user_id)",
        """CREATE TABLE conversations (
            id text PRIMARY KEY,
            scope text NOT NULL,
            title text,
            model text,
            created_at double precision NOT NULL,
            updated_at double precision NOT NULL,
            message_count integer NOT NULL DEFAULT 0,
            source text
        )""",
        "CREATE INDEX conversations_scope ON conversations (scope, updated_at DESC)",
        """CREATE TABLE messages (
            conversation_id text NOT NULL,
            seq integer NOT NULL,
            id text NOT NULL,
            role text NOT NULL,
            content text NOT NULL,
            created_at double precision NOT NULL,
            status text NOT NULL,
            author text,
            model text,
            prompt_tokens bigint NOT NULL,
            completion_tokens bigint NOT NULL,
            cost double precision NOT NULL,
            PRIMARY KEY (conversation_id, seq)
        )""",
        # Per UTC day and model sums, as the TinyDB store keeps them; everyone's = the sum of all.
        """CREATE TABLE usage_days (
            user_id text NOT NULL,
            day bigint NOT NULL,
            model text NOT NULL,
            prompt_tokens bigint NOT NULL,
            completion_tokens bigint NOT NULL,
            cost double precision NOT NULL,
            PRIMARY KEY (user_id, day, model)
        )""",
        "CREATE INDEX usage_days_day ON usage_days (day)",
        "CREATE TABLE meta (key text PRIMARY KEY, value jsonb NOT NULL)",
    ),
)

# Issue 11: each message as it arrived, in its chat's line, until its answer is delivered. A key is
# recorded once per chat (a messenger's redelivery is recognised); ``platform`` lets recovery at
# start read one messenger's unfinished lines through the partial index alone.
INTAKE = Migration(
    "0002_intake",
    2,
    (
        """CREATE TABLE intake (
            chat text NOT NULL,
            seq integer NOT NULL,
            key text NOT NULL,
            platform text NOT NULL,
            message jsonb NOT NULL,
            route jsonb NOT NULL,
            received_at double precision NOT NULL,
            status text NOT NULL,
            answer jsonb,
            ref text,
            PRIMARY KEY (chat, seq),
            UNIQUE (chat, key)
        )""",
        "CREATE INDEX intake_unfinished ON intake (platform, chat, seq) WHERE status <> 'delivered'",
    ),
)

MIGRATIONS: tuple[Migration, ...] = (INITIAL, INTAKE)

# Tables in the order a restore or a copy fills them (and the reverse order empties them).
TABLES = ("users", "identities", "conversations", "messages", "usage_days", "meta", "intake")


async def applied_migrations(conn: AsyncConnection) -> list[tuple[str, int]] | None:
    """The recorded migrations in order, or None when this schema has no Ferry tables yet."""
    cur = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
    row = await cur.fetchone()
    if not row or not row[0]:
        return None
    cur = await conn.execute("SELECT name, version FROM schema_migrations ORDER BY applied_order")
    return [(str(r[0]), int(r[1])) for r in await cur.fetchall()]


def check(applied: Sequence[tuple[str, int]], migrations: Sequence[Migration]) -> None:
    """Refuse a schema written by a newer Ferry (an unknown migration or a higher version)."""
    known = {m.name for m in migrations}
    unknown = [name for name, _ in applied if name not in known]
    if unknown:
        raise StoreError(
            f"the database was written by a newer Ferry (unknown migrations: {', '.join(unknown)}); "
            "upgrade Ferry"
        )
    newest = max((m.version for m in migrations), default=0)
    stored = max((v for _, v in applied), default=0)
    if stored > newest:
        raise StoreError(
            f"the database has schema version {stored}, this Ferry understands up to {newest}; upgrade Ferry"
        )


async def migrate(conn: AsyncConnection, migrations: Sequence[Migration]) -> int:
    """Apply the pending migrations in one transaction under the advisory lock; returns the version."""
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s || current_schema(), 0))", (LOCK_NAMESPACE,)
        )
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                name text PRIMARY KEY,
                version integer NOT NULL,
                applied_order serial,
                applied_at timestamptz NOT NULL DEFAULT now()
            )"""
        )
        applied = await applied_migrations(conn) or []
        check(applied, migrations)
        done = {name for name, _ in applied}
        version = max((v for _, v in applied), default=0)
        for migration in migrations:
            if migration.name in done:
                continue
            for statement in migration.statements:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_migrations (name, version) VALUES (%s, %s)",
                (migration.name, migration.version),
            )
            version = max(version, migration.version)
        return version
