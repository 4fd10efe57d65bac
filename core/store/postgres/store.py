"""The ``Store`` on PostgreSQL, for installations that outgrow one machine.

Writes issued together share one transaction (``pool.py``, ``batch.py``), so a turn's answer and
its usage land together. A conversation's appends and truncations are serialised by a
transaction-scoped advisory lock on its id, which also covers appends to a conversation whose
record does not exist (yet).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from core.store.base import ConversationRecord, MessageRecord, UsageRecord, UsageTotals, UserRecord
from core.store.postgres import backup as pg_backup
from core.store.postgres.intake import PostgresIntake
from core.store.postgres.pool import lock_key

DAY_SECONDS = 86400
USER_COLUMNS = tuple(f.name for f in dataclasses.fields(UserRecord))
CONVERSATION_COLUMNS = tuple(f.name for f in dataclasses.fields(ConversationRecord))
MESSAGE_COLUMNS = tuple(f.name for f in dataclasses.fields(MessageRecord))
MESSAGE_SELECT = "SELECT " + ", ".join(MESSAGE_COLUMNS) + " FROM messages"
CONVERSATION_SELECT = "SELECT " + ", ".join(CONVERSATION_COLUMNS) + " FROM conversations"
USER_SELECT = "SELECT " + ", ".join(USER_COLUMNS) + " FROM users"


def utc_day(at: float) -> int:
    """The UTC midnight (epoch seconds) of the day containing ``at``."""
    return int(at // DAY_SECONDS) * DAY_SECONDS


def _user(row: Sequence[Any]) -> UserRecord:
    return UserRecord.from_dict(dict(zip(USER_COLUMNS, row, strict=True)))


def _totals(rows: Sequence[Sequence[Any]]) -> UsageTotals:
    by_model = {str(m): (int(p), int(c), float(cost)) for m, p, c, cost in rows}
    return UsageTotals(
        prompt_tokens=sum(v[0] for v in by_model.values()),
        completion_tokens=sum(v[1] for v in by_model.values()),
        cost=sum(v[2] for v in by_model.values()),
        by_model=by_model,
    )


class PostgresStore(PostgresIntake):
    """The ``Store`` on a PostgreSQL database; safe for many processes on many machines.

    ``url`` is ``FERRY_DATABASE_URL``; a ``schema`` (here or as ``?schema=`` in the URL) keeps
    Ferry's tables in their own PostgreSQL schema, created when missing. The intake (issue 11)
    lives in ``intake.py``.
    """

    # users and identities

    async def get_user(self, user_id: str) -> UserRecord | None:
        rows = await self._fetch(USER_SELECT + " WHERE id = %s", (user_id,))
        return _user(rows[0]) if rows else None

    async def find_user(self, identity: str) -> UserRecord | None:
        rows = await self._fetch(
            USER_SELECT + " WHERE id = (SELECT user_id FROM identities WHERE identity = %s)", (identity,)
        )
        return _user(rows[0]) if rows else None

    async def put_user(self, user: UserRecord) -> None:
        """Insert or replace a user; its identities now map to it (taken from any previous owner)."""
        values = user.to_dict()
        values["extra"] = Jsonb(values["extra"])
        cols = ", ".join(USER_COLUMNS)
        marks = ", ".join(f"%({c})s" for c in USER_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in USER_COLUMNS if c != "id")

        async def write(conn: AsyncConnection) -> None:
            await conn.execute(
                f"INSERT INTO users ({cols}) VALUES ({marks}) ON CONFLICT (id) DO UPDATE SET {updates}", values
            )
            await conn.execute(
                "DELETE FROM identities WHERE user_id = %s AND NOT (identity = ANY(%s))",
                (user.id, list(user.identities)),
            )
            await conn.execute(
                "INSERT INTO identities (identity, user_id) SELECT unnest(%s::text[]), %s "
                "ON CONFLICT (identity) DO UPDATE SET user_id = excluded.user_id",
                (list(user.identities), user.id),
            )

        await self._write(write)

    async def delete_user(self, user_id: str) -> None:
        """Delete the user's record, identities, own conversations and messages, and usage."""
        scope = f"user:{user_id}"

        async def write(conn: AsyncConnection) -> None:
            await conn.execute(
                "DELETE FROM messages WHERE conversation_id IN (SELECT id FROM conversations WHERE scope = %s)",
                (scope,),
            )
            await conn.execute("DELETE FROM conversations WHERE scope = %s", (scope,))
            await conn.execute("DELETE FROM identities WHERE user_id = %s", (user_id,))
            await conn.execute("DELETE FROM usage_days WHERE user_id = %s", (user_id,))
            await conn.execute("DELETE FROM users WHERE id = %s", (user_id,))

        await self._write(write)

    async def list_users(self) -> list[UserRecord]:
        """Every user, oldest first."""
        return [_user(r) for r in await self._fetch(USER_SELECT + " ORDER BY created_at, id")]

    # conversations

    async def put_conversation(self, conv: ConversationRecord) -> None:
        """Insert or replace; ``message_count`` and ``updated_at`` also follow the stored messages."""
        values = conv.to_dict()
        cols = ", ".join(CONVERSATION_COLUMNS)
        marks = ", ".join(f"%({c})s" for c in CONVERSATION_COLUMNS)
        updates = ", ".join(
            f"{c} = excluded.{c}" for c in CONVERSATION_COLUMNS if c not in ("id", "message_count", "updated_at")
        )

        async def write(conn: AsyncConnection) -> None:
            await lock_key(conn, "conversation", conv.id)
            await conn.execute(
                f"INSERT INTO conversations ({cols}) VALUES ({marks}) ON CONFLICT (id) DO UPDATE SET {updates}, "
                "updated_at = excluded.updated_at",
                values,
            )
            # Counters come from the messages, so a stale record never moves them back.
            await conn.execute(
                "UPDATE conversations SET message_count = coalesce(m.n, 0), "
                "updated_at = greatest(conversations.updated_at, coalesce(m.newest, 0)) "
                "FROM (SELECT max(seq) + 1 AS n, max(created_at) AS newest FROM messages "
                "WHERE conversation_id = %(id)s) AS m WHERE id = %(id)s",
                {"id": conv.id},
            )

        await self._write(write)

    async def get_conversation(self, conversation_id: str) -> ConversationRecord | None:
        async with self.connection() as conn:
            cur = conn.cursor(row_factory=class_row(ConversationRecord))
            await cur.execute(CONVERSATION_SELECT + " WHERE id = %s", (conversation_id,))
            return await cur.fetchone()

    async def list_conversations(self, scope: str, limit: int = 20) -> list[ConversationRecord]:
        """The scope's conversations, most recently updated first."""
        async with self.connection() as conn:
            cur = conn.cursor(row_factory=class_row(ConversationRecord))
            await cur.execute(
                CONVERSATION_SELECT + " WHERE scope = %s ORDER BY updated_at DESC, id LIMIT %s", (scope, limit)
            )
            return await cur.fetchall()

    async def find_conversation_by_source(self, scope: str, source: str) -> ConversationRecord | None:
        async with self.connection() as conn:
            cur = conn.cursor(row_factory=class_row(ConversationRecord))
            await cur.execute(
                CONVERSATION_SELECT + " WHERE scope = %s AND source = %s ORDER BY updated_at DESC LIMIT 1",
                (scope, source),
            )
            return await cur.fetchone()

    async def move_conversations(self, from_scope: str, to_scope: str) -> int:
        """Give every conversation of one scope to another; returns how many moved."""

        async def write(conn: AsyncConnection) -> int:
            cur = await conn.execute("UPDATE conversations SET scope = %s WHERE scope = %s", (to_scope, from_scope))
            return cur.rowcount

        return int(await self._write(write))

    # messages

    async def append_messages(self, messages: list[MessageRecord]) -> list[MessageRecord]:
        """Append to one conversation in order; committed (durable) when it returns."""
        if not messages:
            return []
        cid = messages[0].conversation_id
        if any(m.conversation_id != cid for m in messages):
            raise ValueError("append_messages takes messages of one conversation")

        async def write(conn: AsyncConnection) -> list[MessageRecord]:
            await lock_key(conn, "conversation", cid)
            cur = await conn.execute(
                "SELECT coalesce(max(seq) + 1, 0) FROM messages WHERE conversation_id = %s", (cid,)
            )
            row = await cur.fetchone()
            count = int(row[0]) if row else 0
            out = [dataclasses.replace(m, seq=count + i) for i, m in enumerate(messages)]
            await self._insert_messages(conn, out)
            await conn.execute(
                "UPDATE conversations SET message_count = %s, updated_at = greatest(updated_at, %s) WHERE id = %s",
                (count + len(out), out[-1].created_at, cid),
            )
            return out

        result: list[MessageRecord] = await self._write(write)
        return result

    @staticmethod
    async def _insert_messages(conn: AsyncConnection, messages: Sequence[MessageRecord]) -> None:
        cols = ", ".join(MESSAGE_COLUMNS)
        marks = ", ".join(f"%({c})s" for c in MESSAGE_COLUMNS)
        async with conn.cursor() as cur:
            await cur.executemany(
                f"INSERT INTO messages ({cols}) VALUES ({marks})", [m.to_dict() for m in messages]
            )

    async def update_message(self, message: MessageRecord) -> None:
        """Replace the stored message with the same conversation and ``seq`` (no-op when absent)."""
        values = message.to_dict()
        sets = ", ".join(f"{c} = %({c})s" for c in MESSAGE_COLUMNS if c not in ("conversation_id", "seq"))

        async def write(conn: AsyncConnection) -> None:
            await conn.execute(
                f"UPDATE messages SET {sets} WHERE conversation_id = %(conversation_id)s AND seq = %(seq)s", values
            )

        await self._write(write)

    async def get_messages(self, conversation_id: str, last: int | None = None) -> list[MessageRecord]:
        """The conversation's messages in order; only the last ``last`` ones when given."""
        async with self.connection() as conn:
            cur = conn.cursor(row_factory=class_row(MessageRecord))
            if last:
                await cur.execute(
                    MESSAGE_SELECT + " WHERE conversation_id = %s ORDER BY seq DESC LIMIT %s", (conversation_id, last)
                )
                return list(reversed(await cur.fetchall()))
            await cur.execute(MESSAGE_SELECT + " WHERE conversation_id = %s ORDER BY seq", (conversation_id,))
            return await cur.fetchall()

    async def truncate_messages(self, conversation_id: str, from_seq: int) -> None:
        """Delete the messages with ``seq >= from_seq`` (used by /retry)."""

        async def write(conn: AsyncConnection) -> None:
            await lock_key(conn, "conversation", conversation_id)
            await conn.execute(
                "DELETE FROM messages WHERE conversation_id = %s AND seq >= %s", (conversation_id, max(0, from_seq))
            )
            await conn.execute(
                "UPDATE conversations SET message_count = "
                "(SELECT coalesce(max(seq) + 1, 0) FROM messages WHERE conversation_id = %s) WHERE id = %s",
                (conversation_id, conversation_id),
            )

        await self._write(write)

    # usage

    async def add_usage(self, usage: UsageRecord) -> None:
        """Add to the user's sums of the usage's UTC day and model."""

        async def write(conn: AsyncConnection) -> None:
            await conn.execute(
                "INSERT INTO usage_days VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (user_id, day, model) DO UPDATE "
                "SET prompt_tokens = usage_days.prompt_tokens + excluded.prompt_tokens, "
                "completion_tokens = usage_days.completion_tokens + excluded.completion_tokens, "
                "cost = usage_days.cost + excluded.cost",
                (usage.user_id, utc_day(usage.at), usage.model, usage.prompt_tokens, usage.completion_tokens,
                 usage.cost),
            )

        await self._write(write)

    async def usage_totals(self, user_id: str, since: float) -> UsageTotals:
        """The user's usage on UTC days starting at or after ``since`` (a UTC midnight)."""
        return _totals(
            await self._fetch(
                "SELECT model, sum(prompt_tokens)::bigint, sum(completion_tokens)::bigint, sum(cost) "
                "FROM usage_days WHERE user_id = %s AND day >= %s GROUP BY model ORDER BY model",
                (user_id, since),
            )
        )

    async def global_usage_totals(self, since: float) -> UsageTotals:
        """Everyone's usage on UTC days starting at or after ``since`` (a UTC midnight)."""
        return _totals(
            await self._fetch(
                "SELECT model, sum(prompt_tokens)::bigint, sum(completion_tokens)::bigint, sum(cost) "
                "FROM usage_days WHERE day >= %s GROUP BY model ORDER BY model",
                (since,),
            )
        )

    async def move_usage(self, from_user: str, to_user: str) -> None:
        """Add one user's daily sums to another's and delete them, in one transaction."""
        if from_user == to_user:
            return

        async def write(conn: AsyncConnection) -> None:
            await conn.execute(
                "INSERT INTO usage_days SELECT %s, day, model, prompt_tokens, completion_tokens, cost "
                "FROM usage_days WHERE user_id = %s ON CONFLICT (user_id, day, model) DO UPDATE "
                "SET prompt_tokens = usage_days.prompt_tokens + excluded.prompt_tokens, "
                "completion_tokens = usage_days.completion_tokens + excluded.completion_tokens, "
                "cost = usage_days.cost + excluded.cost",
                (to_user, from_user),
            )
            await conn.execute("DELETE FROM usage_days WHERE user_id = %s", (from_user,))

        await self._write(write)

    # meta

    async def get_meta(self, key: str) -> Any:
        rows = await self._fetch("SELECT value FROM meta WHERE key = %s", (key,))
        return rows[0][0] if rows else None

    @staticmethod
    async def _set_meta(conn: AsyncConnection, key: str, value: Any) -> None:
        if value is None:
            await conn.execute("DELETE FROM meta WHERE key = %s", (key,))
        else:
            await conn.execute(
                "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, Jsonb(value)),
            )

    async def set_meta(self, key: str, value: Any) -> None:
        """Set a JSON-compatible value; ``None`` deletes the key."""
        frozen = copy.deepcopy(value)

        async def write(conn: AsyncConnection) -> None:
            await self._set_meta(conn, key, frozen)

        await self._write(write)

    async def update_meta(self, key: str, change: Callable[[Any], Any]) -> Any:
        """Replace a value with ``change(old)`` holding the key's lock, across every process."""

        async def write(conn: AsyncConnection) -> Any:
            await lock_key(conn, "meta", key)
            cur = await conn.execute("SELECT value FROM meta WHERE key = %s", (key,))
            row = await cur.fetchone()
            value = change(row[0] if row else None)
            await self._set_meta(conn, key, value)
            return copy.deepcopy(value)

        return await self._write(write)

    # operator tasks

    async def backup(self, dest: Path) -> None:
        """Write one consistent snapshot of every table to the new folder ``dest`` while in use."""
        async with self.connection() as conn:
            await pg_backup.dump(conn, Path(dest))

    async def restore(self, src: Path) -> None:
        """Replace every table's content with a backup written by :meth:`backup`, in one transaction."""
        await self._write(lambda conn: pg_backup.load(conn, Path(src), self._migrations))
