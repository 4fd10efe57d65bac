"""Which replica answers which chat: session advisory locks, and word between replicas (issue 16).

Several ``ferry telegram`` processes (replicas) may take a bot's webhook behind one entry; any of
them may record a chat's update. One of them at a time answers the chat: the one holding the
chat's *session-level* advisory lock on its own connection. PostgreSQL holds such a lock for as
long as the session lives, so a replica that is killed (SIGKILL, a lost machine) loses its chats
the moment its connection closes, with no lease to wait out; a live replica then takes their
unfinished records over (https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS).
The connection has TCP keepalives, so a machine that vanishes without closing it is noticed too.

Replicas tell each other two things by ``NOTIFY`` on a second connection that ``LISTEN``s
(https://www.postgresql.org/docs/current/sql-notify.html): a chat got a record (its owner puts it
in line) and ``/cancel`` for a chat (its owner stops the answer being written). A notification is
delivered only after its transaction commits and may be missed while a connection is re-made, so
each replica also looks for chats nobody holds every ``sweep`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg import AsyncConnection

from core.store.postgres.url import StoreURL

log = logging.getLogger(__name__)

CHANNEL = "ferry_replicas"
"""The channel's name; a store in a schema of its own adds the schema (replicas of another hear nothing)."""
KEEPALIVES = {"keepalives": "1", "keepalives_idle": "10", "keepalives_interval": "5", "keepalives_count": "3"}
LOCK_KEY = "hashtextextended('ferry:chat:' || current_schema() || ':' || {}, 0)"


async def _connect(url: StoreURL) -> AsyncConnection:
    """A connection of its own (not pooled: its session is what holds the locks), with keepalives."""
    kwargs: dict[str, Any] = {**url.connect_kwargs, **KEEPALIVES}
    return await psycopg.AsyncConnection.connect(url.conninfo, autocommit=True, **kwargs)


def channel(url: StoreURL) -> str:
    """The NOTIFY channel of the replicas sharing ``url``'s tables."""
    return f"{CHANNEL}_{url.schema}" if url.schema else CHANNEL


class PostgresClaims:
    """This replica's chats (advisory locks held on one connection) and its notifications."""

    def __init__(self, url: StoreURL) -> None:
        self._url = url
        self._locks: AsyncConnection | None = None
        self._held: set[str] = set()
        self._lock = asyncio.Lock()
        self._unlocks: set[asyncio.Task[None]] = set()

    async def _conn(self) -> AsyncConnection:
        if self._locks is None or self._locks.closed:
            if self._locks is not None:
                lost, self._held = self._held, set()
                log.error("PostgreSQL: the replica's lock connection broke; %d chat(s) taken again", len(lost))
            self._locks = await _connect(self._url)
        return self._locks

    def holds(self, chat: str) -> bool:
        """Whether this replica answers ``chat`` now."""
        return chat in self._held

    async def claim(self, chats: list[str]) -> list[str]:
        """Take the chats nobody holds (none waits); returns those this replica holds now."""
        wanted = [c for c in dict.fromkeys(chats) if c not in self._held]
        if wanted:
            async with self._lock:
                conn = await self._conn()
                cur = await conn.execute(
                    f"SELECT c FROM unnest(%s::text[]) c WHERE pg_try_advisory_lock({LOCK_KEY.format('c')})",
                    (wanted,),
                )
                self._held.update(str(r[0]) for r in await cur.fetchall())
        return [c for c in chats if c in self._held]

    def release(self, chat: str) -> None:
        """This replica is done with ``chat`` for now: another may take it (the unlock follows)."""
        if chat not in self._held:
            return
        self._held.discard(chat)  # at once: from here on a message of the chat is taken anew
        task = asyncio.get_running_loop().create_task(self._unlock(chat))
        self._unlocks.add(task)
        task.add_done_callback(self._unlocks.discard)

    async def _unlock(self, chat: str) -> None:
        # Each lock taken is paired with one unlock: a claim that ran before this holds it again.
        async with self._lock:
            if self._locks is not None and not self._locks.closed:
                with contextlib.suppress(psycopg.Error):
                    await self._locks.execute(f"SELECT pg_advisory_unlock({LOCK_KEY.format('%s')})", (chat,))

    async def listen(self, every: float) -> AsyncIterator[tuple[str, str] | None]:
        """(kind, chat) as replicas notify; None every ``every`` seconds without any (time to sweep)."""
        conn = await _connect(self._url)
        try:
            await conn.execute(f"LISTEN {channel(self._url)}")
            while True:
                got = False
                async for note in conn.notifies(timeout=every):
                    got = True
                    kind, _, chat = note.payload.partition(" ")
                    yield kind, chat
                if not got:
                    yield None
        finally:
            await conn.close()

    async def close(self) -> None:
        """Let every chat go (closing the session releases its locks)."""
        self._held.clear()
        if self._unlocks:
            await asyncio.gather(*self._unlocks, return_exceptions=True)
        if self._locks is not None:
            with contextlib.suppress(psycopg.Error):
                await self._locks.close()
            self._locks = None
