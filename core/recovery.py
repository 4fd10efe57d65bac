"""Received messages from the record to the person: in line now, again after a restart, once.

:class:`Intake` is the assistant's side of :mod:`core.intake`. ``receive`` records a message and
puts it in its chat's line in one step. The first ``receive`` or ``pending`` of a platform puts
every message of it that an earlier run recorded but did not finish back in line, in their
recorded order, before any new message of the platform; ``pending`` hands their replies over,
then keeps handing over answers whose delivery was given up.

A message's spooled files (:mod:`core.media.spool`) are removed once it is answered or turns out
not to be recorded here; those an earlier run left that no unfinished record names are swept
when the platform's records are put back in line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from core.intake import (
    DuplicateMessage,
    Receipt,
    deliverable,
    event_from_dict,
    incoming_from_dict,
    incoming_to_dict,
    message_id,
    recorded_paths,
)
from core.lines import ChatLines
from core.media.spool import Spool, discard, spooled
from core.replicas import Replicas, replica_store
from core.reply import Reply
from core.store.base import IntakeRecord, IntakeStore
from core.types import Incoming, ReplyEvent

log = logging.getLogger(__name__)

Answer = Callable[[Incoming, Receipt], AsyncIterator[ReplyEvent]]
"""Run a received message through the pipeline (the assistant's, with failures as sentences)."""

RECENT_KEYS = 4096
"""Delivered keys remembered in memory, so a redelivered update costs no model request."""

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
        cancel: Callable[[str], bool] | None = None,
        data_dir: Path | None = None,
    ) -> None:
        self._store = store
        self._data_dir = data_dir
        self._started = time.time()  # spooled files older than this are an earlier run's
        self._lines = lines
        self._answer = answer
        self._clock = clock
        self._retry = retry
        self._open: dict[str, Receipt] = {}  # key -> receipt not yet delivered
        self._recent: OrderedDict[str, None] = OrderedDict()  # keys delivered lately, newest last
        self._given_up: dict[str, float] = {}  # key -> when its reader stopped without delivering
        self._gates: dict[str, asyncio.Future[None]] = {}  # platform -> done once its records are in line
        self._handed: dict[str, asyncio.Queue[Reply]] = {}  # platform -> replies for ``pending``
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        shared = replica_store(store)
        self._replicas = (
            None if shared is None else Replicas(shared, self._take_over, self._idle, cancel or (lambda _: False))
        )

    async def receive(self, msg: Incoming, key: str, route: dict[str, Any] | None) -> Reply | None:
        """Record the message and put it in line; None when the key was received before."""
        gate = self._gate(msg.chat.platform)
        if not gate.done():
            await gate  # the earlier run's messages take their places first
        if key in self._open or key in self._recent:
            discard(msg)
            return None
        record = IntakeRecord(key, str(msg.chat), incoming_to_dict(msg), self._clock(), dict(route or {}))
        if self._replicas is not None:
            # Records other replicas made in the chat go in line first; held elsewhere, the holder answers.
            if not await self._replicas.take(record.chat):
                await self._record_for_holder(record)
                return None
            if key in self._open:
                return None
        receipt = Receipt(self._store, record, msg, on_settled=self._settled)
        self._open[key] = receipt
        recorded = receipt.start_recording()  # beside the model request, not before it
        reply = self._join(receipt)
        try:
            stored = await asyncio.shield(recorded)
        except BaseException:  # not recorded: the adapter must not acknowledge it; nobody reads this reply
            self._drop(reply, key)
            raise
        if stored is None:  # recorded by an earlier run: the line's work stores nothing and stops
            self._drop(reply, key)
            return None
        receipt.record = stored
        return reply

    async def _record_for_holder(self, record: IntakeRecord) -> None:
        """Record a message of a chat another replica answers, and tell it (None: nothing to serve here)."""
        assert self._replicas is not None
        if await self._store.record(record) is not None:
            await self._replicas.recorded_elsewhere(record.chat)

    def _drop(self, reply: Reply, key: str) -> None:
        receipt = self._open.pop(key, None)
        if receipt is not None:
            discard(receipt.incoming)  # not recorded here: the update comes again, or was answered
        reply.receipt = None
        reply.close_unread()
        if receipt is not None:
            self._maybe_let_go(receipt.chat)

    async def cancel_elsewhere(self, chat: str) -> bool:
        """``/cancel`` in a chat another replica may be answering: passed on when its line is not empty."""
        if self._replicas is None or not self._idle(chat):
            return False
        return await self._replicas.pass_cancel(chat)

    def _take_over(self, records: list[IntakeRecord]) -> None:
        """Put records another replica made (or left) in their chat's line, after what is there."""
        for rec in records:
            if rec.key in self._open or rec.key in self._recent:
                continue
            self._gate(rec.platform)
            try:
                self._handed[rec.platform].put_nowait(self._recover_one(rec))
            except (KeyError, TypeError, ValueError) as e:
                log.error("%s: recorded message %s cannot be read back (%s); skipped", rec.platform, rec.key, e)

    def _idle(self, chat: str) -> bool:
        return not any(r.chat == chat for r in self._open.values())

    def _maybe_let_go(self, chat: str) -> None:
        if self._replicas is not None and self._idle(chat):
            self._replicas.let_go(chat)

    def close(self) -> None:
        """The process is stopping: answers it cuts short stay unanswered, so the next run answers them whole."""
        self._closing = True
        for task in self._tasks:
            task.cancel()

    async def aclose(self) -> None:
        """Let the other replicas take this one's chats (after :meth:`close` and the lines stopped)."""
        if self._replicas is not None:
            await self._replicas.close()

    def undelivered(self, chat: str) -> set[str]:
        """Ids of the chat's stored answers the person is known not to have (the adapter gave them up)."""
        out = set()
        for key in self._given_up:
            receipt = self._open.get(key)
            if receipt is not None and receipt.chat == chat and receipt.answer is not None and not receipt.settled:
                out.add(message_id(key, "assistant"))
        return out

    async def pending(self, platform: str) -> AsyncIterator[Reply]:
        """The platform's unfinished answers from earlier runs, then answers to hand over again."""
        gate = self._gate(platform)
        handed = self._handed[platform]
        await gate
        # One getter kept across timeouts: cancelling a get on a timeout could lose a reply.
        getter: asyncio.Future[Reply] | None = None
        try:
            while True:
                if getter is None:
                    getter = asyncio.ensure_future(handed.get())
                done, _ = await asyncio.wait({getter}, timeout=min(self._retry, 5.0))
                if getter in done:
                    reply, getter = getter.result(), None
                    yield reply
                else:
                    self._hand_over_given_up(platform)
        finally:
            if getter is not None:
                getter.cancel()

    # --- inside -----------------------------------------------------------------------------

    def _gate(self, platform: str) -> asyncio.Future[None]:
        """Start putting the platform's unfinished records back in line (once); done when they are."""
        gate = self._gates.get(platform)
        if gate is None:
            gate = self._gates[platform] = asyncio.get_running_loop().create_future()
            self._handed[platform] = asyncio.Queue()
            if self._replicas is not None:
                self._replicas.watch(platform)
            task = asyncio.create_task(self._recover(platform, gate))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return gate

    async def _recover(self, platform: str, gate: asyncio.Future[None]) -> None:
        try:
            records = await self._store.unfinished(platform)
            if self._replicas is None:
                self._sweep(platform, records)
            else:  # only the chats no live replica answers; their spooled files may be in flight
                held = set(await self._replicas.claim([rec.chat for rec in records]))
                records = [rec for rec in records if rec.chat in held]
            fresh = [rec for rec in records if rec.key not in self._open]
            for rec in fresh:
                try:
                    self._handed[platform].put_nowait(self._recover_one(rec))
                except (KeyError, TypeError, ValueError) as e:
                    # Unreadable (written by another version?): skipped for good, named by key alone.
                    log.error("%s: recorded message %s cannot be read back (%s); skipped", platform, rec.key, e)
                    await self._store.mark_delivered(rec.chat, rec.key, None)
            if fresh:
                log.info("%s: %d recorded message(s) to finish from before", platform, len(fresh))
        except Exception:
            # Nothing is lost: the records stay, and the next start tries again.
            log.exception("%s: could not read the messages an earlier run left", platform)
        finally:
            if not gate.done():
                gate.set_result(None)

    def _sweep(self, platform: str, records: list[IntakeRecord]) -> None:
        """Remove spooled files of an earlier run that no unfinished record names."""
        if self._data_dir is None:
            return
        keep = [path for rec in records for path in recorded_paths(rec.message)]
        keep += [path for receipt in self._open.values() for path in spooled(receipt.incoming)]
        removed = Spool.of(self._data_dir, platform).sweep(keep, before=self._started)
        if removed:
            log.info("%s: removed %d spooled file(s) no message needs", platform, removed)

    def _recover_one(self, rec: IntakeRecord) -> Reply:
        receipt = Receipt(self._store, rec, incoming_from_dict(rec.message), recovered=True, on_settled=self._settled)
        self._open[rec.key] = receipt
        if rec.status == "answered" and rec.answer is not None:
            return self._hand_over(receipt)
        return self._join(receipt)

    def _hand_over_given_up(self, platform: str) -> None:
        """Answers whose reader stopped without delivering, ``retry`` seconds ago, go to ``pending`` again."""
        now = self._clock()
        for key, since in list(self._given_up.items()):
            receipt = self._open.get(key)
            if receipt is None or receipt.settled:
                self._given_up.pop(key, None)
            elif receipt.record.platform == platform and receipt.answer is not None and now - since >= self._retry:
                del self._given_up[key]
                self._handed[platform].put_nowait(self._hand_over(receipt))

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
        kept: list[ReplyEvent] = receipt.so_far
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
        except Exception:
            return  # a duplicate, or not recorded at all: ``receive`` told the adapter, nobody reads this
        await receipt.answered(kept)
        discard(receipt.incoming)  # the answer is recorded: the files are needed no more

    def _settled(self, receipt: Receipt) -> None:
        if receipt.settled:
            self._open.pop(receipt.key, None)
            self._given_up.pop(receipt.key, None)
            self._recent[receipt.key] = None
            while len(self._recent) > RECENT_KEYS:
                self._recent.popitem(last=False)
            self._maybe_let_go(receipt.chat)
        else:
            self._given_up[receipt.key] = self._clock()
