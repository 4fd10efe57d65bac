"""The PostgreSQL store's connections: the pool, the write batcher, open (migrations) and close.

Reads run on a pooled connection in autocommit. Writes go through :class:`WriteBatcher`, one
transaction per batch. Every operation that cannot reach the server raises :class:`StoreError`;
the pool keeps re-making lost connections with back-off, and checks each one before handing it out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from core.store.base import StoreError
from core.store.postgres.batch import WriteBatcher
from core.store.postgres.schema import MIGRATIONS, Migration, applied_migrations, migrate
from core.store.postgres.url import StoreURL

RECONNECT_SECONDS = 30.0
INTAKE_POOL = 4
"""Connections for the intake's records and marks, beside the store's pool."""


async def lock_key(conn: AsyncConnection, kind: str, key: str) -> None:
    """Hold a lock on one key until the transaction ends (a conversation, a meta key)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"ferry:{kind}:{key}",))


class PostgresConnection:
    """A pool of connections to Ferry's tables in one database (and schema), migrated at open.

    ``url`` is ``FERRY_DATABASE_URL``; a ``schema`` (here or as ``?schema=`` in the URL) keeps
    Ferry's tables in their own PostgreSQL schema, created when missing.
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        pool_size: int = 8,
        timeout: float = 10.0,
        migrations: Sequence[Migration] = MIGRATIONS,
        wait_for_disk: bool = True,
    ) -> None:
        self._url = StoreURL.parse(url, schema=schema)
        self._pool_size = pool_size
        self._timeout = timeout
        self._migrations = tuple(migrations)
        self._pool: AsyncConnectionPool | None = None
        self._intake_pool: AsyncConnectionPool | None = None
        self._batcher: WriteBatcher | None = None
        self.version = 0
        # False only for bulk work that can be re-run (``ferry store copy``): commits return before
        # the WAL reaches the disk; :meth:`flush` makes all of them durable at the end.
        self._wait_for_disk = wait_for_disk

    @property
    def url(self) -> StoreURL:
        """Where this store connects (``display`` hides the password)."""
        return self._url

    # plumbing

    @asynccontextmanager
    async def connection(self, *, intake: bool = False) -> AsyncIterator[AsyncConnection]:
        """A pooled connection in autocommit (``intake``: from the intake's own pool); connection
        failures become :class:`StoreError`."""
        pool = self._intake_pool if intake else self._pool
        if pool is None:
            raise StoreError("the store is not open; call open() first")
        try:
            async with pool.connection(timeout=self._timeout) as conn:
                yield conn
        except PoolTimeout as exc:
            raise StoreError(f"PostgreSQL at {self._url.display} does not answer: {exc}") from exc
        except psycopg.OperationalError as exc:
            raise StoreError(f"PostgreSQL at {self._url.display} failed: {exc}") from exc

    async def _write(self, write: Callable[[AsyncConnection], Any]) -> Any:
        if self._batcher is None:
            raise StoreError("the store is not open; call open() first")
        try:
            return await self._batcher.run(write)
        except PoolTimeout as exc:
            raise StoreError(f"PostgreSQL at {self._url.display} does not answer: {exc}") from exc
        except psycopg.OperationalError as exc:
            raise StoreError(f"PostgreSQL at {self._url.display} failed: {exc}") from exc

    async def _fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async with self.connection() as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchall()

    # open and close

    async def open(self) -> None:
        """Connect, create the schema when asked for one, and apply pending migrations."""
        if self._url.schema:
            # The schema must exist before a connection whose search_path names it creates tables.
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url.conninfo, autocommit=True, connect_timeout=max(1, int(self._timeout))
                ) as conn, conn.transaction():
                    # Under a lock: two processes racing through IF NOT EXISTS can both try to create it.
                    await lock_key(conn, "create-schema", self._url.schema)
                    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._url.schema}"')
            except psycopg.Error as exc:
                raise StoreError(f"cannot create schema {self._url.schema} at {self._url.display}: {exc}") from exc
        pool = self._make_pool("ferry-store", self._pool_size)
        # The intake's records and marks get connections of their own: they are what the messenger's
        # acknowledgement and a replica's takeover wait for, so they must not queue behind the
        # turns' reads and writes (a mark queued there is a window in which a SIGKILL leaves an
        # answer that was sent looking unsent to the replica that takes the chat over).
        intake_pool = self._make_pool("ferry-intake", INTAKE_POOL)
        try:
            await pool.open(wait=True, timeout=self._timeout)
            async with pool.connection(timeout=self._timeout) as conn:
                self.version = await migrate(conn, self._migrations)
            await intake_pool.open(wait=True, timeout=self._timeout)
        except StoreError:
            await pool.close()
            await intake_pool.close()
            raise
        except (psycopg.Error, PoolTimeout) as exc:
            await pool.close()
            await intake_pool.close()
            raise StoreError(f"cannot open the PostgreSQL store at {self._url.display}: {exc}") from exc
        self._pool, self._intake_pool = pool, intake_pool
        self._batcher = WriteBatcher(pool)

    def _make_pool(self, name: str, size: int) -> AsyncConnectionPool:
        return AsyncConnectionPool(
            self._url.conninfo,
            kwargs={"autocommit": True, **self._connect_kwargs()},
            min_size=1,
            max_size=size,
            open=False,
            # A connection broken by a server restart is noticed and replaced before use; lost
            # connections are re-made with exponential back-off (the pool's own: 1, 2, 4 … s). The
            # pool gives a series of attempts up after RECONNECT_SECONDS and starts a fresh one on
            # the next request, which keeps the wait between two attempts under ~16 s in a long outage.
            check=AsyncConnectionPool.check_connection,
            reconnect_timeout=RECONNECT_SECONDS,
            name=name,
        )

    def _connect_kwargs(self) -> dict[str, str]:
        kwargs = dict(self._url.connect_kwargs)
        if not self._wait_for_disk:
            kwargs["options"] = f"{kwargs.get('options', '')} -csynchronous_commit=off".strip()
        return kwargs

    async def flush(self) -> None:
        """Make every commit so far durable (one commit that waits for the disk flushes the WAL before it)."""
        async with self.connection() as conn, conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit = on")
            await conn.execute("INSERT INTO meta VALUES ('ferry:flush', 'true') ON CONFLICT (key) DO NOTHING")
            await conn.execute("DELETE FROM meta WHERE key = 'ferry:flush'")

    async def close(self) -> None:
        """Wait for writes in flight, then close every connection."""
        pool, intake_pool, batcher = self._pool, self._intake_pool, self._batcher
        self._pool = self._intake_pool = self._batcher = None
        if batcher is not None:
            await batcher.drain()
        for each in (pool, intake_pool):
            if each is not None:
                await each.close()

    async def schema(self) -> dict[str, Any]:
        """The schema version and applied migration names (as the TinyDB store's ``schema``)."""
        async with self.connection() as conn:
            applied = await applied_migrations(conn) or []
        return {"schema_version": max((v for _, v in applied), default=0), "migrations": [n for n, _ in applied]}

