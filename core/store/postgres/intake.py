"""The PostgreSQL store's intake: one row per received message, in its chat's line (issue 11).

The semantics are the TinyDB store's (``tinydb_intake.py``) and the contract's
(``tests/store/test_contract_intake.py``): a key is recorded once per chat, ``seq`` is the next
place in the chat's line, a status only moves forward, a delivered row keeps only its key and is
forgotten once older than ``INTAKE_RETENTION`` or beyond the chat's newest ``INTAKE_KEEP``.
Recording holds a transaction-scoped advisory lock on the chat, so two processes receiving in one
chat at once never take the same place; each write is committed before it returns.

A record runs in a transaction of its own rather than in the write batcher's shared one: a batch
holds every chat lock it took until its commit, so two batches recording in the same chats in
different orders deadlock, and PostgreSQL breaks that only after ``deadlock_timeout`` (1 s), on
the path that runs before the messenger is told the message arrived. One lock per transaction
cannot form such a cycle.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from core.store.base import INTAKE_KEEP, INTAKE_RETENTION, IntakeRecord, StoreError
from core.store.postgres.batch import RETRIES, RETRYABLE
from core.store.postgres.claims import PostgresClaims, channel
from core.store.postgres.pool import PostgresConnection, lock_key

INTAKE_COLUMNS = ("key", "chat", "message", "received_at", "route", "seq", "status", "answer", "ref")
# A delivered record only keeps its key (as ``advance`` in core/store/base.py does).
NOT_DELIVERED = "status <> 'delivered'"


def _record(row: tuple[Any, ...]) -> IntakeRecord:
    return IntakeRecord.from_dict(dict(zip(INTAKE_COLUMNS, row, strict=True)))


class PostgresIntake(PostgresConnection):
    """Received messages, a row each, until their answers are delivered."""

    async def record(self, rec: IntakeRecord) -> IntakeRecord | None:
        """Add the message to the end of its chat's line, durably; None when its key is there already."""

        async def write(conn: AsyncConnection) -> IntakeRecord | None:
            await lock_key(conn, "intake", rec.chat)
            cur = await conn.execute(
                "SELECT EXISTS (SELECT 1 FROM intake WHERE chat = %s AND key = %s), "
                "(SELECT coalesce(max(seq) + 1, 0) FROM intake WHERE chat = %s)",
                (rec.chat, rec.key, rec.chat),
            )
            row = await cur.fetchone()
            assert row is not None
            if row[0]:
                return None
            stored = IntakeRecord.from_dict({**rec.to_dict(), "seq": int(row[1])})
            # Delivered records no messenger sends again: the chat's rows stay its recent line.
            await conn.execute(
                "DELETE FROM intake WHERE chat = %(chat)s AND status = 'delivered' AND (received_at < %(old)s "
                "OR seq NOT IN (SELECT seq FROM intake WHERE chat = %(chat)s AND status = 'delivered' "
                "ORDER BY seq DESC LIMIT %(keep)s))",
                {"chat": rec.chat, "old": rec.received_at - INTAKE_RETENTION, "keep": INTAKE_KEEP},
            )
            await conn.execute(
                "INSERT INTO intake (chat, seq, key, platform, message, route, received_at, status, answer, ref) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    stored.chat,
                    stored.seq,
                    stored.key,
                    stored.platform,
                    Jsonb(stored.message),
                    Jsonb(stored.route),
                    stored.received_at,
                    stored.status,
                    None if stored.answer is None else Jsonb(stored.answer),
                    stored.ref,
                ),
            )
            return stored

        result: IntakeRecord | None = await self._alone(write)
        return result

    async def _alone(self, write: Callable[[AsyncConnection], Awaitable[Any]]) -> Any:
        """Run ``write`` in a transaction of its own (see the module docstring); committed when it returns."""
        async with self.connection(intake=True) as conn:
            for attempt in range(RETRIES):
                try:
                    async with conn.transaction():
                        return await write(conn)
                except RETRYABLE:
                    await asyncio.sleep(0.01 * (attempt + 1))
        raise StoreError(f"PostgreSQL at {self.url.display}: recording kept conflicting with other writers")

    async def unfinished(self, platform: str) -> list[IntakeRecord]:
        """The platform's records not yet delivered, each chat's in line order, oldest chat first.

        Called at start: it also forgets the platform's delivered rows older than a day, so a chat
        that never writes again does not keep them.
        """

        async def forget(conn: AsyncConnection) -> None:
            await conn.execute(
                "DELETE FROM intake WHERE platform = %s AND status = 'delivered' AND received_at < %s",
                (platform, time.time() - INTAKE_RETENTION),
            )

        await self._write(forget)
        rows = await self._fetch(
            f"SELECT {', '.join(INTAKE_COLUMNS)} FROM intake WHERE platform = %s AND {NOT_DELIVERED} "
            "ORDER BY chat, seq",
            (platform,),
        )
        lines: dict[str, list[IntakeRecord]] = {}
        for row in rows:
            rec = _record(row)
            lines.setdefault(rec.chat, []).append(rec)
        ordered = sorted(lines.values(), key=lambda line: line[0].received_at)
        return [rec for line in ordered for rec in line]

    # replicas (issue 16, core/replicas.py)

    def replica_claims(self) -> PostgresClaims:
        """This process's chats and the other replicas' word, on connections of their own."""
        return PostgresClaims(self.url)

    async def unfinished_in(self, chat: str) -> list[IntakeRecord]:
        """The chat's records not yet delivered, in line order (read before each message is put in line)."""
        async with self.connection(intake=True) as conn:
            cur = await conn.execute(
                f"SELECT {', '.join(INTAKE_COLUMNS)} FROM intake WHERE chat = %s AND {NOT_DELIVERED} ORDER BY seq",
                (chat,),
            )
            return [_record(row) for row in await cur.fetchall()]

    async def unfinished_chats(self, platform: str) -> list[str]:
        """The platform's chats with a record not yet delivered."""
        rows = await self._fetch(
            f"SELECT DISTINCT chat FROM intake WHERE platform = %s AND {NOT_DELIVERED}", (platform,)
        )
        return [str(row[0]) for row in rows]

    async def tell(self, kind: str, chat: str) -> None:
        """Tell every replica ``kind`` (``intake``: a record to put in line; ``cancel``) about ``chat``."""
        async with self.connection(intake=True) as conn:
            await conn.execute("SELECT pg_notify(%s, %s)", (channel(self.url), f"{kind} {chat}"))

    async def mark_answered(self, chat: str, key: str, answer: list[dict[str, Any]], ref: str | None = None) -> None:
        """The answer is stored; its events stay until it is delivered (a delivered record stays so)."""
        await self._mark(
            chat, key, "status = 'answered', answer = %(answer)s, ref = coalesce(nullif(%(ref)s, ''), ref)",
            answer=Jsonb(answer), ref=ref,
        )  # fmt: skip

    async def mark_shown(self, chat: str, key: str, ref: str) -> None:
        """Part of the answer is visible as the message ``ref``."""
        await self._mark(chat, key, "ref = coalesce(nullif(%(ref)s, ''), ref)", ref=ref)

    async def mark_delivered(self, chat: str, key: str, ref: str | None) -> None:
        """The person has the whole answer: keep only the key (and ``ref``)."""
        await self._mark(
            chat,
            key,
            "status = 'delivered', message = '{}', route = '{}', answer = NULL, "
            "ref = coalesce(nullif(%(ref)s, ''), ref)",
            ref=ref,
        )

    async def _mark(self, chat: str, key: str, sets: str, **values: Any) -> None:
        params = {"chat": chat, "key": key, **values}

        # One statement in autocommit, not batched: a mark is what tells a replica taking the chat
        # over what was sent, so it must land in one round trip, not wait behind a batch of other
        # writes (nor join one that waits for a lock). Alone it holds one row: it cannot deadlock.
        async with self.connection(intake=True) as conn:
            await conn.execute(
                f"UPDATE intake SET {sets} WHERE chat = %(chat)s AND key = %(key)s AND {NOT_DELIVERED}", params
            )
