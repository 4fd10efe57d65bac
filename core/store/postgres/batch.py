"""Group commit: writes issued in the same moment share one PostgreSQL transaction.

The assistant stores an answer and its usage together (``asyncio.gather`` of two store calls); both
reach the batcher before it runs, so they commit as one transaction: either both land or neither.
Each write runs in its own savepoint, so one write refused (a constraint, a bad value) fails alone,
while a failed commit fails every write of the batch. A batch that loses a deadlock or a
serialization conflict against another process is rolled back whole and run again.

One batch is in flight at a time; what arrives meanwhile waits for the next. Two batches of one
process running side by side would take the same rows (a chat's intake record, a conversation's
lock) in different orders — a burst of more than ``MAX_BATCH`` writes, or a chat's marks landing
in consecutive batches — and deadlock, which PostgreSQL breaks only after ``deadlock_timeout``
(1 s by default) while every write of both waits. In turn, the next batch simply grows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from psycopg import AsyncConnection, errors
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

Write = Callable[[AsyncConnection], Awaitable[Any]]

# A batch of writes is small (one turn, or a few turns of different chats at once); a cap keeps a
# burst from holding row locks for long.
MAX_BATCH = 64
RETRIES = 5
RETRYABLE = (errors.DeadlockDetected, errors.SerializationFailure)


class WriteBatcher:
    """Runs submitted writes on pool connections, several per transaction when they arrive together."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool
        self._pending: list[tuple[Write, asyncio.Future[Any]]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: asyncio.Task[None] | None = None

    async def run(self, write: Write) -> Any:
        """Run ``write(conn)`` inside a transaction; returns its result once committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((write, future))
        if not self._scheduled:
            self._scheduled = True
            # Runs after every task already waiting to run has submitted its write.
            loop.call_soon(self._start)
        return await future

    def _start(self) -> None:
        self._scheduled = False
        if self._running is not None or not self._pending:
            return  # the batch in flight starts the next one when it is done
        batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        task = self._running = asyncio.ensure_future(self._flush(batch))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._running = None
        self._start()

    async def _flush(self, batch: list[tuple[Write, asyncio.Future[Any]]]) -> None:
        for attempt in range(RETRIES):
            try:
                results = await self._commit(batch)
            except RETRYABLE as exc:
                log.info("store batch conflicted with another writer (%s); running it again", exc)
                await asyncio.sleep(0.01 * (attempt + 1))
                continue
            except BaseException as exc:  # the commit itself failed: nothing of the batch landed
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
                if not isinstance(exc, Exception):
                    raise
                return
            for (_, future), (ok, value) in zip(batch, results, strict=True):
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
            return
        for _, future in batch:
            if not future.done():
                future.set_exception(psycopg.OperationalError("the write kept conflicting with other writers"))

    async def _commit(self, batch: list[tuple[Write, asyncio.Future[Any]]]) -> list[tuple[bool, Any]]:
        if len(batch) == 1:
            return [await self._commit_one(batch[0][0])]
        results: list[tuple[bool, Any]] = []
        async with self._pool.connection() as conn, conn.transaction():
            for write, future in batch:
                if future.cancelled():
                    results.append((False, asyncio.CancelledError()))
                    continue
                try:
                    async with conn.transaction():  # a savepoint: this write alone rolls back
                        results.append((True, await write(conn)))
                except RETRYABLE:
                    raise
                except (psycopg.OperationalError, psycopg.InterfaceError):
                    raise  # the connection is gone: the whole batch fails
                except Exception as exc:
                    results.append((False, exc))
        return results

    async def _commit_one(self, write: Write) -> tuple[bool, Any]:
        """A write alone: its transaction is its savepoint (two round trips fewer)."""
        try:
            async with self._pool.connection() as conn, conn.transaction():
                return (True, await write(conn))
        except RETRYABLE:
            raise
        except (psycopg.OperationalError, psycopg.InterfaceError):
            raise
        except Exception as exc:
            return (False, exc)

    async def drain(self) -> None:
        """Wait for every batch in flight (before the pool closes)."""
        while self._tasks or self._pending:
            if self._pending and not self._scheduled:
                self._start()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await asyncio.sleep(0)  # let a scheduled start run
