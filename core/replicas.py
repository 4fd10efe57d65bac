"""Replicas (issue 16): several processes of one messenger on one PostgreSQL store, each chat answered by one.

Any replica may record a chat's message (the update's key makes a second record of it a no-op);
the replica that holds the chat (:class:`~core.store.postgres.claims.PostgresClaims`, a session
lock) puts it in line and answers it, so a chat's messages are answered one at a time, in the
order they were recorded, whoever took them (Telegram posts a chat's next update only once the
one before it was answered 200, that is recorded; and a replica reads the chat's unfinished records
before it puts a new message in line). A replica that records a message for a chat held
elsewhere tells the holder (``NOTIFY``) and leaves the answer to it; when a chat's line is empty
its holder lets it go. A replica that dies lets go of its chats with its connection, and a live
one takes their unfinished records over: unanswered ones are answered, answered ones delivered
(an answer whose sending had begun is not sent again, as after a restart). ``/cancel`` taken by a
replica that is not writing the chat's answer is passed on to the one that is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from core.store.base import IntakeRecord

log = logging.getLogger(__name__)

SWEEP = 0.5
"""Seconds between two looks for chats with unfinished records that no replica holds."""

GRACE = 0.3
"""Seconds a chat found without a holder is held before its records are read: a replica that
died may have sent its last mark's COMMIT, which its server session still carries out."""


class Claims(Protocol):
    """The chats this replica holds, and word from the other replicas (the store's)."""

    def holds(self, chat: str) -> bool: ...
    async def claim(self, chats: list[str]) -> list[str]: ...
    def release(self, chat: str) -> None: ...
    def listen(self, every: float) -> Any: ...
    async def close(self) -> None: ...


@runtime_checkable
class ReplicaStore(Protocol):
    """What the intake of a store shared by replicas offers besides :class:`~core.store.base.IntakeStore`."""

    def replica_claims(self) -> Claims: ...
    async def unfinished_in(self, chat: str) -> list[IntakeRecord]: ...
    async def unfinished_chats(self, platform: str) -> list[str]: ...
    async def tell(self, kind: str, chat: str) -> None: ...


def replica_store(store: object) -> ReplicaStore | None:
    """The store as a :class:`ReplicaStore`, when it is one (PostgreSQL)."""
    return store if isinstance(store, ReplicaStore) else None


class Replicas:
    """This replica's side: which chats it answers, taking over, passing ``/cancel`` on."""

    def __init__(
        self,
        store: ReplicaStore,
        take: Callable[[list[IntakeRecord]], None],
        idle: Callable[[str], bool],
        cancel: Callable[[str], bool],
        sweep: float = SWEEP,
    ) -> None:
        self._store = store
        self.claims = store.replica_claims()
        self._take = take  # puts records of a chat now held in line, skipping those already there
        self._idle = idle  # whether this replica has nothing open in a chat
        self._cancel = cancel  # stops the chat's answer being written here; False when none is
        self._sweep = sweep
        self._platforms: set[str] = set()
        self._busy: dict[str, asyncio.Lock] = {}  # chat -> held while it is being taken
        self._task: asyncio.Task[None] | None = None

    def holds(self, chat: str) -> bool:
        """Whether this replica answers ``chat`` now and nothing is being taken over in it."""
        return self.claims.holds(chat) and chat not in self._busy

    def watch(self, platform: str) -> None:
        """Look after the platform's chats from now on (started with its first message or ``pending``)."""
        self._platforms.add(platform)
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def take(self, chat: str) -> bool:
        """Hold ``chat`` and put its unfinished records in line first; False when another replica holds it."""
        lock = self._busy.setdefault(chat, asyncio.Lock())
        try:
            async with lock:
                if not self.claims.holds(chat) and not await self.claims.claim([chat]):
                    return False
                self._take(await self._store.unfinished_in(chat))
                return True
        finally:
            if not lock.locked() and self._busy.get(chat) is lock:
                del self._busy[chat]

    async def recorded_elsewhere(self, chat: str) -> None:
        """A message of a chat another replica holds is recorded: its holder puts it in line."""
        await self._store.tell("intake", chat)

    async def pass_cancel(self, chat: str) -> bool:
        """``/cancel`` for a chat whose answer another replica may be writing: told when the chat's
        line is not empty (False: there is nothing to stop anywhere)."""
        if not await self._store.unfinished_in(chat):
            return False
        await self._store.tell("cancel", chat)
        return True

    async def claim(self, chats: list[str]) -> list[str]:
        """Hold those of ``chats`` no live replica holds (an earlier run's, at start); returns them."""
        return await self.claims.claim(chats)

    def let_go(self, chat: str) -> None:
        """This replica has nothing left to do in ``chat``: another may take its next message."""
        if chat not in self._busy:
            self.claims.release(chat)

    async def close(self) -> None:
        """Stop listening and let every chat go."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.claims.close()

    async def _run(self) -> None:
        while True:
            try:
                async for note in self.claims.listen(self._sweep):
                    if note is None:
                        await self._sweep_once()
                    elif note[0] == "cancel":
                        self._cancel(note[1])
                    elif note[0] == "intake":
                        await self._take_if_free(note[1])
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the store is away: look again in a moment, nothing is lost
                log.warning("replicas: cannot hear the other replicas (%s); trying again", type(e).__name__)
                await asyncio.sleep(1.0)

    async def _sweep_once(self) -> None:
        """Take the chats with unfinished records nobody holds (their replica died, or let go too early)."""
        for platform in list(self._platforms):
            chats = [c for c in await self._store.unfinished_chats(platform) if not self.claims.holds(c)]
            got = await self.claims.claim(chats) if chats else []
            if got:
                await asyncio.sleep(GRACE)
            for chat in got:
                await self._take_if_free(chat)

    async def _take_if_free(self, chat: str) -> None:
        if await self.take(chat) and self._idle(chat):
            self.let_go(chat)  # nothing was left to do (another replica finished it meanwhile)
