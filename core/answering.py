"""Answering one conversation: context, the model's stream, the stored answer and its usage.

The stream is consumed in a task of its own so ``/cancel`` stops it at once; whatever was
generated is kept and marked, so the person and the model both see where it was cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from core.catalogue import ModelInfo
from core.context import ContextTooLarge, as_seen, build_context, dated_runs, turns_from_history
from core.intake import message_id
from core.llm import Delta, ModelClient, ModelError, ModelEvent, Stop, Usage
from core.media import images
from core.metrics import Metrics
from core.registry import Registry
from core.request import Request
from core.services import Services
from core.store.base import ConversationRecord, MessageRecord, MessageStatus, UsageRecord, UserRecord
from core.tokens import count_message_tokens, count_tokens
from core.types import FinalText, Notice, PartialAnswer, ReplyEvent, StreamStart
from core.window import Refit, length_marker_key, resolve_model, stream_fitted

log = logging.getLogger(__name__)

HISTORY_LIMIT = 400  # messages read back for the context; the window trims further
_END = object()
_MODEL_ERRORS = ("quota", "rate_limited", "provider_down", "too_large", "unknown_model", "auth")


# The person's message and its write, under way while the model is asked.
Said = tuple[MessageRecord, "asyncio.Future[list[MessageRecord]]"]


class _Cancelled(Exception):
    """The person sent /cancel while the answer was being generated."""


@dataclasses.dataclass
class _Outcome:
    """What one model stream produced (filled while it runs)."""

    text: str = ""
    usage: Usage | None = None
    stop: Stop | None = None
    failure: ModelError | None = None
    cancelled: bool = False

    @property
    def status(self) -> MessageStatus:
        return "cancelled" if self.cancelled else "interrupted" if self.failure is not None else "ok"


class Answerer:
    """Generates, stores and accounts answers; ``cancels`` maps a chat to its running answer's stop."""

    def __init__(
        self,
        services: Services,
        model: ModelClient,
        metrics: Metrics,
        registry: Registry,
        cancels: dict[str, asyncio.Event],
        undelivered: Callable[[str], set[str]] = lambda chat: set(),
    ) -> None:
        self._undelivered = undelivered  # a chat's stored answers the person is known not to have
        self._s = services
        self._model = model
        self._metrics = metrics
        self._registry = registry
        self._cancels = cancels

    def model_name(self, user: UserRecord) -> str:
        """The user's chosen model while it is offered, else the default."""
        settings = self._s.settings
        return user.model if user.model in settings.model_choices else settings.model

    async def answer(
        self, request: Request, conv: ConversationRecord, said: Said | None = None
    ) -> AsyncIterator[ReplyEvent]:
        """Answer the conversation's last message: stream it, store it, account it.

        ``said`` is the person's message with its write still under way, when it is being stored
        while the model is asked; it is part of the context and gets its place before the answer.
        """
        model_name = self.model_name(request.user)
        settings = self._s.settings
        info = await resolve_model(self._s.catalogue.get(model_name), self._model, settings.context_window)
        reply_budget = min(settings.reply_tokens, info.max_output_tokens, info.context_window // 2)
        fitted = await self._context(request, conv, info, reply_budget, said)
        if isinstance(fitted, Notice):
            yield fitted
            return
        messages, refit = fitted
        if said is not None:
            # Give the write its first step; one refused at once (a full disk) is not answered.
            # While the message's record is being written the write only waits for it (``_say``):
            # nothing can refuse it yet, and the step would put this turn behind every other
            # turn's work on the loop (in a burst of updates, all of them reached the model at
            # the end of the burst instead of one after another).
            if not request.recording:
                await asyncio.wait([said[1]], timeout=0)
            if said[1].done():
                said[1].result()  # raises its StoreError
        yield StreamStart()
        outcome = _Outcome()
        started = time.monotonic()
        # A provider that still says "too large" gets one harder-trimmed try (core/window.py).
        events = stream_fitted(self._model, model_name, messages, reply_budget, info.context_window, refit)
        async for partial in self._generate(str(request.msg.chat), model_name, events, outcome):
            yield partial
        if not outcome.text and (outcome.failure is not None or outcome.cancelled):
            yield self._nothing(request.lang, outcome, model_name, conv)
            return
        if said is not None:
            await said[1]  # the person's message gets its place before the answer's
        answer_id = message_id(request.receipt.key, "assistant") if request.receipt else uuid.uuid4().hex
        counted = request.receipt is not None and request.receipt.counted
        usage = await self._keep(request.user, conv, model_name, info, messages, outcome, answer_id, counted)
        self._metrics.model_duration.labels(model_name).observe(time.monotonic() - started)
        if outcome.failure is not None:
            log.warning("model %s broke off for conversation %s: %s", model_name, conv.id, outcome.failure)
        yield self._final(request.lang, outcome, usage, reply_budget, info.context_window)
        for hook in self._registry.answer_hooks:
            async for event in hook(request, usage):
                yield event

    async def _context(
        self, request: Request, conv: ConversationRecord, info: ModelInfo, reply_budget: int, said: Said | None
    ) -> tuple[list[dict[str, str]], Refit] | Notice:
        """The messages for the model (roles alternating, fitted to the window) and how to refit them smaller."""
        reads = request.reads  # a chat turn's read, maybe started beside its user's (core/readahead.py)
        history = await (
            reads.get_messages(conv.id, HISTORY_LIMIT)
            if reads
            else self._s.store.get_messages(conv.id, last=HISTORY_LIMIT)
        )
        if said is not None:  # the person's message, maybe not stored yet
            history = [*(m for m in history if m.id != said[0].id), said[0]][-HISTORY_LIMIT:]
        unseen = self._undelivered(str(request.msg.chat))
        # The model is told what the person did not see whole: it never builds on an answer they lack.
        seen = ((m.role, as_seen(m.content, m.status, m.id not in unseen), m.created_at) for m in history if m.content)
        turns = turns_from_history(dated_runs(seen))
        if not turns:
            return self._s.notice(request.lang, "chat.retry_nothing")
        system = self.system_prompt(request)
        try:
            messages = build_context(system, turns, info, reply_budget)
        except ContextTooLarge:
            return self._s.notice(request.lang, "error.too_large")
        placeholder = self._s.texts.get(request.lang, "media.photo_placeholder")

        def with_images(fitted: list[dict[str, str]]) -> list[dict[str, Any]]:
            """Photo links as image parts for a model that can see (core/media/images.py)."""
            return images.attach(fitted, self._s.settings.data_dir, info.vision, placeholder)

        def refit(window: int) -> tuple[list[dict[str, Any]], int]:
            smaller = dataclasses.replace(info, context_window=window)
            budget = min(reply_budget, window // 4)
            return with_images(build_context(system, turns, smaller, budget)), budget

        return with_images(messages), refit

    def system_prompt(self, request: Request) -> str:
        """The operator's prompt, today's date, and the person's own instructions."""
        today = dt.datetime.fromtimestamp(self._s.clock(), dt.UTC).strftime("%A %d %B %Y")
        parts = [
            self._s.settings.system_prompt
            or "You are Ferry, a helpful assistant people talk to in a messenger. "
            "Answer in the language the person writes in. Use Markdown sparingly.",
            f"Today is {today} (UTC).",
        ]
        if request.msg.chat.is_group:
            parts.append("This is a group chat; each user message starts with the sender's name.")
        if request.user.instructions:
            parts.append(f"The person's own instructions:\n{request.user.instructions}")
        return "\n\n".join(parts)

    async def _generate(
        self, chat: str, model: str, events: AsyncIterator[ModelEvent], outcome: _Outcome
    ) -> AsyncIterator[PartialAnswer]:
        """The answer so far after each new piece; the end of the stream is left in ``outcome``."""
        cancel = asyncio.Event()
        self._cancels[chat] = cancel
        started = time.monotonic()
        try:
            async for item in self._stream(events, cancel):
                if isinstance(item, Delta):
                    if item.text:
                        if not outcome.text:
                            self._metrics.model_latency.labels(model).observe(time.monotonic() - started)
                        outcome.text += item.text
                        yield PartialAnswer(outcome.text)
                elif isinstance(item, Stop):
                    outcome.stop = item
                else:
                    outcome.usage = item
            if outcome.text:  # before the answer is stored: a preview now would be replaced at once
                yield PartialAnswer(outcome.text, ended=True)
        except ModelError as e:
            outcome.failure = e
            outcome.text = outcome.text or e.partial_text
            self._metrics.errors.labels(f"model_{e.kind}").inc()
        except _Cancelled:
            outcome.cancelled = True
        finally:
            if self._cancels.get(chat) is cancel:
                del self._cancels[chat]

    def _nothing(self, lang: str, outcome: _Outcome, model: str, conv: ConversationRecord) -> Notice:
        """The sentence for a stream that produced no text at all."""
        if outcome.failure is not None:
            log.warning("model %s failed for conversation %s: %s", model, conv.id, outcome.failure)
            kind = outcome.failure.kind if outcome.failure.kind in _MODEL_ERRORS else "bad_response"
            return self._s.notice(lang, f"error.{kind}", model=model)
        return self._s.notice(lang, "chat.cancelled")

    async def _keep(
        self,
        user: UserRecord,
        conv: ConversationRecord,
        model: str,
        info: ModelInfo,
        messages: list[dict[str, str]],
        outcome: _Outcome,
        answer_id: str,
        counted: bool = False,
    ) -> UsageRecord:
        """Store the answer and its usage, and count it (once per turn: not when ``counted`` before a crash)."""
        prompt_tokens, completion_tokens = _tokens(model, messages, outcome.text, outcome.usage)
        cost = info.cost(prompt_tokens, completion_tokens)
        now = self._s.clock()
        record = MessageRecord(
            id=answer_id,
            conversation_id=conv.id,
            role="assistant",
            content=outcome.text,
            created_at=now,
            status=outcome.status,
            model=model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost=cost,
        )
        usage = UsageRecord(user.id, conv.id, model, prompt_tokens, completion_tokens, cost, now)
        # Both durable before the final text; written together, so the store commits them as one.
        store = self._s.store
        if counted:
            await store.append_messages([record])
            return usage
        await asyncio.gather(store.append_messages([record]), store.add_usage(usage))
        self._metrics.tokens.labels(model, "prompt").inc(prompt_tokens)
        self._metrics.tokens.labels(model, "completion").inc(completion_tokens)
        self._metrics.cost.labels(model).inc(cost)
        return usage

    def _final(self, lang: str, outcome: _Outcome, usage: UsageRecord, max_tokens: int, window: int) -> FinalText:
        """The answer as delivered: marked when it stopped short, was cut off or broke off."""
        texts = self._s.texts
        if outcome.status == "ok" and outcome.stop is None:
            return FinalText(outcome.text, streamed=True)
        if outcome.status == "ok" and outcome.stop is not None:
            # Complete as far as the model went; the person should know it stopped short.
            key = f"chat.stopped_{outcome.stop.reason}"
            if outcome.stop.reason == "length":  # its own budget ran out, or the whole window filled up
                key = length_marker_key(usage.prompt_tokens, usage.completion_tokens, max_tokens, window)
            marker = texts.get(lang, key)
        elif outcome.failure is not None:
            marker = texts.get(lang, "chat.cut_off_error", reason=texts.get(lang, "error.interrupted"))
        else:
            marker = texts.get(lang, "chat.cut_off")
        return FinalText(f"{outcome.text}\n\n_{marker}_", interrupted=True, streamed=True)

    async def _stream(self, events: AsyncIterator[ModelEvent], cancel: asyncio.Event) -> AsyncIterator[ModelEvent]:
        """The model's events, consumed in one task of their own so /cancel can stop them at once."""
        queue: asyncio.Queue[Any] = asyncio.Queue()

        async def pump() -> None:
            try:
                async for item in events:
                    queue.put_nowait(item)
                queue.put_nowait(_END)
            except ModelError as e:
                queue.put_nowait(e)
            except Exception as e:
                log.exception("model client failed unexpectedly")
                queue.put_nowait(ModelError("bad_response", str(e), ""))

        task = start_now(pump())  # the request leaves in this step, not after every other turn's
        # /cancel wakes the reader (one task an answer, not one an event); set, it wins over queued events.
        cancelled = asyncio.create_task(cancel.wait())
        cancelled.add_done_callback(lambda _: queue.put_nowait(_END))
        try:
            while True:
                item = await queue.get()
                if cancel.is_set():
                    raise _Cancelled
                if item is _END:
                    return
                if isinstance(item, ModelError):
                    raise item
                yield item
                await asyncio.sleep(0)  # the reader takes each piece before the next one, even when they came at once
        finally:
            cancelled.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def start_now(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """A task whose first step runs at once, in the caller's own step (Python 3.12's eager start),
    else at the loop's next round (Python 3.11).

    The model's pump sends the request in its first step. Created the usual way, that step waited
    for every callback already ready: when a burst of updates arrived (50 chats' messages in one
    ``getUpdates`` answer), every turn got as far as its request before any request left, and all
    50 left together at the end of the burst. Started at once, each request leaves as its turn
    gets there (bench/telegram_bench.py on Python 3.12, 50 chats: the model request after the
    update 14-17 ms median instead of 27-38 with a model streaming for 1.2 s, and 13-22% more
    answers a second with one answering at once).
    """
    loop = asyncio.get_running_loop()
    if sys.version_info >= (3, 12):
        return asyncio.Task(coro, loop=loop, eager_start=True)
    return loop.create_task(coro)


def _tokens(model: str, messages: list[dict[str, str]], text: str, usage: Usage | None) -> tuple[int, int]:
    """The provider's counts when it sent them, else our own estimate."""
    if usage is not None:
        return usage.prompt_tokens, usage.completion_tokens
    return count_message_tokens(model, messages), count_tokens(model, text)
