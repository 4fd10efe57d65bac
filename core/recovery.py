"""Received messages from the record to the person: in line now, again after a restart, once.

:class:`Intake` is the assistant's side of :mod:`core.intake`. ``receive`` records a message and
puts it in its chat's line in one step; ``pending`` first puts every message of the platform that
an earlier run recorded but did not finish back in line (in their recorded order, before any new
message of the platform), then keeps handing over answers whose delivery was given up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from core.intake import (
    DuplicateMessage,
    Receipt,
    deliverable,
    event_from_dict,
    incoming_from_dict,
    incoming_to_dict,
    message_id,
)
from core.lines import ChatLines
from core.reply import Reply
from core.store.base import IntakeRecord, IntakeStore
from core.types import Incoming, ReplyEvent

log = logging.getLogger(__name__)

Answer = Callable[[Incoming, Receipt], AsyncIterator[ReplyEvent]]
"""Run a received message through the pipeline (the assistant's, with failures as sentences)."""

RETRY_DELIVERY = 30.0
"""Seconds before an answer the adapter gave up delivering is handed over again."""


class Intake:
    """Receipts of the messages this process received or recovered, until they are delivered."""

    def __init__(
        self,
        store: IntakeStore,
        lines: ChatLines,
        answer: Answer,
        clock: Callable[[], float],
        retry: float = RETRY_DELIVERY,
    ) -> None:
        self._store = store
        self._lines = lines
        self._answer = answer
        self._clock = clock
        self._retry = retry
        self._open: dict[str, Receipt] = {}  # key -> receipt not yet delivered
        self._given_up: dict[str, float] = {}  # key -> when its reader stopped without delivering
        self._recovering: dict[str, asyncio.Event] = {}  # platform -> set once its records are in line
        self._closing = False

    async def receive(self, msg: Incoming, key: str, route: dict[str, Any] | None) -> Reply | None:
        """Record the message and put it in line; None when the key was received before."""
        recovering = self._recovering.get(msg.chat.platform)
        if recovering is not None and not recovering.is_set():
            await recovering.wait()  # the earlier run's messages go first
        if key in self._open:
            return None
        record = IntakeRecord(key, str(msg.chat), incoming_to_dict(msg), self._clock(), dict(route or {}))
        receipt = Receipt(self._store, record, msg, on_settled=self._settled)
        self._open[key] = receipt
        recorded = receipt.start_recording()  # beside the model request, not before it
        reply = self._join(receipt)
        try:
            stored = await asyncio.shield(recorded)
        except BaseException:
            self._open.pop(key, None)
            raise
        if stored is None:
            self._open.pop(key, None)
            return None  # the line's work sees the duplicate and stores nothing
        receipt.record = stored
        return reply

    def close(self) -> None:
        """The process is stopping: answers it cuts short stay unanswered, so the next run answers them whole."""
        self._closing = True

    def undelivered(self, chat: str) -> set[str]:
        """Ids of the chat's stored answers the person is known not to have (given up or never read)."""
        return {
            message_id(r.key, "assistant")
            for r in self._open.values()
            if r.chat == chat and r.answer is not None and not r.settled and r.key in self._given_up
        }

    async def pending(self, platform: str) -> AsyncIterator[Reply]:
        """The platform's unfinished answers from earlier runs, then answers to hand over again."""
        if platform not in self._recovering:
            self._recovering[platform] = asyncio.Event()
            try:
                records = await self._store.unfinished(platform)
                replies = [self._recover(rec) for rec in records if rec.key not in self._open]
            finally:
                self._recovering[platform].set()
            if replies:
                log.info("%s: %d recorded message(s) to finish from before", platform, len(replies))
            for reply in replies:
                yield reply
        while True:
            await asyncio.sleep(min(self._retry, 5.0))
            now = self._clock()
            for key, since in list(self._given_up.items()):
                receipt = self._open.get(key)
                if receipt is None or receipt.settled:
                    self._given_up.pop(key, None)
                elif receipt.record.platform == platform and receipt.answer is not None and now - since >= self._retry:
                    del self._given_up[key]
                    yield self._hand_over(receipt)

    # --- inside -----------------------------------------------------------------------------

    def _recover(self, rec: IntakeRecord) -> Reply:
        receipt = Receipt(self._store, rec, incoming_from_dict(rec.message), recovered=True, on_settled=self._settled)
        self._open[rec.key] = receipt
        if rec.status == "answered" and rec.answer is not None:
            return self._hand_over(receipt)
        return self._join(receipt)

    def _join(self, receipt: Receipt) -> Reply:
        return self._lines.join(receipt.chat, lambda: self._work(receipt), receipt)

    def _hand_over(self, receipt: Receipt) -> Reply:
        """The stored answer, delivered after the chat's earlier replies."""
        events = [event_from_dict(e) for e in receipt.answer or []]
        receipt.recovered = True

        async def replay() -> AsyncIterator[ReplyEvent]:
            for event in events:
                yield event

        return self._lines.join(receipt.chat, replay, receipt)

    async def _work(self, receipt: Receipt) -> AsyncIterator[ReplyEvent]:
        """Answer the message; when done, record what the person must be shown."""
        kept: list[ReplyEvent] = []
        try:
            async for event in self._answer(receipt.incoming, receipt):
                if deliverable(event):
                    kept.append(event)
                yield event
        except DuplicateMessage:
            return
        if self._closing:
            return  # stopped by the shutdown, not by the person: answered again, whole, after the restart
        try:
            await receipt.recorded()
        except DuplicateMessage:
            return
        await receipt.answered(kept)

    def _settled(self, receipt: Receipt) -> None:
        if receipt.settled:
            self._open.pop(receipt.key, None)
            self._given_up.pop(receipt.key, None)
        else:
            self._given_up[receipt.key] = self._clock()
