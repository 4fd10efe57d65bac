"""Each chat's messages answered one at a time, in the order they were submitted.

A message takes its place when it is submitted (synchronously, before any await), so the
adapters need no ordering machinery. Every chat's line is run by a task of the core's own: a
reader that stops reading delays nobody. Different chats run concurrently.

The durable intake (issue 11, :mod:`core.recovery`) joins received messages here with their
receipt, and at start the recorded messages an earlier run did not finish, in their order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from core.reply import Reply
from core.types import ReplyEvent

if TYPE_CHECKING:
    from core.intake import Receipt

log = logging.getLogger(__name__)

Work = Callable[[], AsyncIterator[ReplyEvent]]
"""Answering one message: called when its turn comes, its events go to the message's reply."""


class ChatLines:
    """The per-chat queues and the tasks that run them."""

    def __init__(self) -> None:
        self._waiting: dict[str, deque[tuple[Work, Reply]]] = {}
        self._last: dict[str, asyncio.Event] = {}  # the newest reply's "read" per chat, until set
        self._tasks: set[asyncio.Task[None]] = set()

    def join(self, chat: str, work: Work, receipt: Receipt | None = None) -> Reply:
        """Put a message in its chat's line now; its reply is read after the chat's earlier ones."""
        reply = Reply(after=self._last.get(chat), on_read=lambda read: self._forget(chat, read), receipt=receipt)
        self._last[chat] = reply.read
        waiting = self._waiting.get(chat)
        if waiting is None:
            # Queued before the line's task starts: a task that starts at once (an eager task
            # factory) would otherwise find its line empty, end, and leave the message unanswered.
            waiting = self._waiting[chat] = deque([(work, reply)])
            self._spawn(self._run(chat, waiting))
        else:
            waiting.append((work, reply))
        return reply

    def aside(self, work: Work) -> Reply:
        """Answer a message out of line (``/cancel``, which must reach the answer in progress)."""
        reply = Reply()
        self._spawn(self._fill(work, reply))
        return reply

    def busy(self, chat: str) -> bool:
        """Whether a chat has a message being answered or waiting."""
        return chat in self._waiting

    async def close(self) -> None:
        """Stop every line (the answers in progress have been asked to stop already)."""
        tasks = list(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=5)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, chat: str, waiting: deque[tuple[Work, Reply]]) -> None:
        try:
            while waiting:
                work, reply = waiting.popleft()
                await self._fill(work, reply)
        finally:
            for _, reply in waiting:
                reply.finish()
            del self._waiting[chat]

    @staticmethod
    async def _fill(work: Work, reply: Reply) -> None:
        try:
            async for event in work():
                reply.put(event)
        except Exception:
            log.exception("answering a message failed")
        finally:
            reply.finish()

    def _forget(self, chat: str, read: asyncio.Event) -> None:
        if self._last.get(chat) is read:
            del self._last[chat]
