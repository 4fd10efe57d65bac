"""A chat turn's store reads, started together at its beginning instead of one after another.

Before its model request a chat turn reads the sender's user, then the scope's active
conversation (the scope needs the user's id), then that conversation's recent messages: three
trips to the store's worker threads in a row, each queued behind the other turns' writes (issue 14
measured 60, 30 and 20 ms medians, and 300 ms and more at p90, under load). The ids those reads
need rarely change from one turn of a chat to the next, so the pipeline starts the conversation
reads for the ids the chat's last turn had, beside the user's read; a turn uses a started read only
when it is of the very ids it then needs, and reads anew otherwise.

A store whose reads run on the event loop itself (TinyDB's and the memory store's:
``READS_ON_LOOP``) gains nothing from them: a read started early is a task that does the same
work at its first step, and the turn that awaits it before that step gives way to every other
turn's work on the loop (in a burst of updates, one more round behind all of them before the
model request). There the reads are made when the turn needs them.

A started read is no older than the turn that uses it: the chat's line runs one turn at a time,
so the previous turn's writes are done before it starts. A turn that may change what it reads
before it reads it (a recovered turn that truncates its conversation, an attachment's reader)
starts none.
"""

from __future__ import annotations

import asyncio
from typing import Any

from core.store.base import ConversationRecord, MessageRecord, Store

GUESSES = 65_536
"""Ids remembered for guessing (sender to user, scope to conversation); forgotten all at once beyond."""


class ReadAhead:
    """One turn's reads started early; each is used once, by a read of the same arguments (a meta
    value: by every read of it in the turn)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._started: dict[tuple[Any, ...], asyncio.Future[Any]] = {}
        self._meta: dict[str, Any] = {}
        self._early = not getattr(store, "READS_ON_LOOP", False)  # start reads early (see the module)

    def conversations(self, scope: str) -> None:
        """Start reading the scope's active conversation (``list_conversations(scope, 1)``)."""
        key = ("conversations", scope, 1)
        if self._early and key not in self._started:
            self._started[key] = asyncio.ensure_future(self._store.list_conversations(scope, 1))

    def messages(self, conversation_id: str, last: int) -> None:
        """Start reading a conversation's last ``last`` messages."""
        key = ("messages", conversation_id, last)
        if self._early and key not in self._started:
            self._started[key] = asyncio.ensure_future(self._store.get_messages(conversation_id, last=last))

    def known(self, conversation_id: str, last: int, messages: list[MessageRecord]) -> None:
        """What reading a conversation's last ``last`` messages gives, known without reading (a new one's: none)."""
        known: asyncio.Future[list[MessageRecord]] = asyncio.get_running_loop().create_future()
        known.set_result(messages)
        self._started[("messages", conversation_id, last)] = known

    def meta(self, key: str) -> None:
        """Start reading a meta value (one a chat check reads, ``Registry.add_chat_check``)."""
        if self._early and ("meta", key) not in self._started:
            self._started[("meta", key)] = asyncio.ensure_future(self._store.get_meta(key))

    async def get_meta(self, key: str) -> Any:
        """The store's ``get_meta``, answered by the started read if any; read once a turn (the
        budget check and the alert after the answer both read the global budget)."""
        if key in self._meta:
            return self._meta[key]
        started = self._started.pop(("meta", key), None)
        value = self._meta[key] = await (started if started is not None else self._store.get_meta(key))
        return value

    async def list_conversations(self, scope: str, limit: int) -> list[ConversationRecord]:
        """The store's ``list_conversations``, answered by the started read of the same arguments if any."""
        started = self._started.pop(("conversations", scope, limit), None)
        if started is not None:
            result: list[ConversationRecord] = await started
            return result
        return await self._store.list_conversations(scope, limit)

    async def get_messages(self, conversation_id: str, last: int) -> list[MessageRecord]:
        """The store's ``get_messages``, answered by the started read of the same arguments if any."""
        started = self._started.pop(("messages", conversation_id, last), None)
        if started is not None:
            result: list[MessageRecord] = await started
            return result
        return await self._store.get_messages(conversation_id, last=last)

    def close(self) -> None:
        """The turn is over: reads it did not use are cancelled, or their outcome dropped."""
        for started in self._started.values():
            started.cancel()
            started.add_done_callback(_dropped)
        self._started.clear()


def _dropped(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # a failed guess is nobody's error


def remember(guesses: dict[str, str], key: str, value: str) -> None:
    """Keep a guess for the chat's next turn (bounded: all forgotten when there are too many)."""
    if guesses.get(key) != value:
        if len(guesses) >= GUESSES:
            guesses.clear()
        guesses[key] = value
