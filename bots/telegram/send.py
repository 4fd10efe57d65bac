"""Sending to Telegram: pacing, flood control, plain-text fallback and live (streamed) answers.

A :class:`Sender` puts messages into one chat and gets them through flood control without
losing or repeating a final text; a :class:`LiveAnswer` shows an answer while it is generated,
by drafts in private chats and an edited placeholder in groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    ReplyParameters,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import (
    Application,
)
from telegram.request import RequestData
from telegram.request._requestparameter import RequestParameter

from bots.events import Keyboard
from bots.telegram.http import RequestNotSent
from bots.telegram.pacing import ChatPacer, FloodGate, SendLimiter
from bots.telegram.probe import MessageIds
from bots.telegram.render import render_parts, split_message, split_plain, telegram_length, visible_text

log = logging.getLogger(__name__)


PLATFORM = "telegram"
ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]



@dataclass(frozen=True)
class Pacing:
    """How often the bot may touch a chat while an answer streams (seconds)."""

    draft_interval: float = 0.5  # sendMessageDraft in private chats
    # A draft lapses about 30 s after it was sent (Bot API, sendMessageDraft): while the model
    # pauses, the same draft is sent again this long after the last one.
    draft_refresh: float = 20.0
    # editMessageText in a group, per chat and shared by every answer in it: Telegram allows
    # about 20 messages a minute in a group (Bot FAQ; PTB FloodLimit.MESSAGES_PER_MINUTE_PER_GROUP).
    edit_interval: float = 3.0
    global_rate: float = 30.0  # new messages per second over all chats (Bot FAQ: "about 30")
    typing_interval: float = 4.0  # a chat action shows for about 5 s
    max_send_attempts: int = 6  # for final texts under flood control
    placeholder: str = "…"
    # The first preview of an answer waits this long: a fast model's whole answer is then shown
    # once, as its final text, not as a draft replaced a few milliseconds later (one Bot API call
    # fewer; the thinking draft is on screen meanwhile).
    settle: float = 0.02


@dataclass(frozen=True)
class Target:
    """Where replies to one incoming message go."""

    chat_id: int
    thread_id: int | None = None
    reply_to: int | None = None  # quote the person's message (groups only)
    is_private: bool = True
    lang: str | None = None
    message_id: int | None = None  # the person's message, for reactions


def flood_counter(metrics: Any) -> Callable[[float], None]:
    def count(seconds: float) -> None:
        metrics.flood_waits.labels(PLATFORM).inc()
        metrics.flood_wait_seconds.labels(PLATFORM).inc(seconds)

    return count


def retry_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB warns that ints become timedeltas; both are handled
        warnings.simplefilter("ignore")
        value: Any = exc.retry_after
    return float(value.total_seconds()) if hasattr(value, "total_seconds") else float(value)


def _is(exc: BadRequest, words: str) -> bool:
    return words in exc.message.lower()


def keyboard(buttons: Keyboard) -> InlineKeyboardMarkup | None:
    """The inline keyboard for the core's button rows (``None`` for no buttons)."""
    if not buttons:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(b.label, callback_data=b.data) for b in row] for row in buttons])



# --- sending -------------------------------------------------------------------------------------


async def bot_api(bot: Bot, method: str, **params: Any) -> Any:
    """One Bot API call through the bot's transport; its result as Telegram sent it (JSON).

    For the calls of every answer that need a message id at most: PTB's own method builds a
    whole ``Message`` (chat, sender, entities) from the result, a third of a ``sendMessage``
    call's CPU. Errors are PTB's own (``RetryAfter``, ``BadRequest``, ``ChatMigrated``…): the
    transport's ``post`` raises them, as it does for PTB's methods. ``None`` parameters are left
    out, as PTB leaves them out.
    """
    data = RequestData([RequestParameter.from_input(k, v) for k, v in params.items() if v is not None])
    return await bot.request.post(f"{bot.base_url}/{method}", data)


class MaybeSent(NetworkError):
    """A new message's request failed after it was sent: it may be in the chat; never send it again."""


UNKNOWN_MESSAGE = 0
"""The id of a message that may have arrived (:class:`MaybeSent`): no edit can reach it."""


class Sender:
    """Sends and edits messages in one chat, honouring flood control and falling back to plain text."""

    def __init__(
        self,
        app: Application[Any, Any, Any, Any, Any, Any],
        gate: FloodGate,
        pacing: Pacing,
        pacer: ChatPacer | None = None,
        limiter: SendLimiter | None = None,
        moves: dict[int, int] | None = None,
        ids: MessageIds | None = None,
    ) -> None:
        self.bot = app.bot
        self.ids = ids or MessageIds()
        self.gate = gate
        self.pacing = pacing
        self.pacer = pacer or ChatPacer(pacing.edit_interval)
        self.limiter = limiter or SendLimiter(pacing.global_rate)
        self.moves = {} if moves is None else moves  # old group id → its supergroup's id
        self.draft_id: int | None = None
        """The draft of a private chat's answer: a new message that must wait for the global limit
        is shown in it meanwhile (a fast answer has shown no text before its message otherwise)."""

    def chat_id(self, target: Target) -> int:
        """Where the target's chat lives now (a group upgraded to a supergroup has a new id)."""
        return self.moves.get(target.chat_id, target.chat_id)

    async def _wait_gate(self, chat_id: int) -> None:
        delay = self.gate.wait_time(chat_id)
        if delay > 0:
            await asyncio.sleep(delay)

    async def _attempt(self, chat_id: int, call: Any, *, idempotent: bool) -> Any:
        """Run ``call(chat_id)`` until it gets through flood control; network retries only if idempotent.

        A group upgraded to a supergroup refuses everything (PTB raises ``ChatMigrated``): the
        call is made again at the new id, which later calls use at once.
        """
        for attempt in range(self.pacing.max_send_attempts):
            chat_id = self.moves.get(chat_id, chat_id)
            await self._wait_gate(chat_id)
            try:
                return await call(chat_id)
            except ChatMigrated as exc:
                log.info("chat %s is now supergroup %s", chat_id, exc.new_chat_id)
                self.moves[chat_id] = int(exc.new_chat_id)
            except RetryAfter as exc:
                self.gate.close_for(chat_id, retry_seconds(exc))
                log.info("flood control in chat %s: waiting %.0f s", chat_id, retry_seconds(exc))
            except TimedOut as exc:
                if not idempotent:
                    raise MaybeSent(exc.message) from exc  # sending again could duplicate it
                await asyncio.sleep(min(2**attempt, 10))
            except BadRequest:
                raise
            except NetworkError as exc:
                # Only a connection that was never made proves a new message did not arrive.
                if not idempotent and not isinstance(exc, RequestNotSent):
                    raise MaybeSent(exc.message) from exc
                await asyncio.sleep(min(2**attempt, 10))
        raise TimedOut(f"gave up after {self.pacing.max_send_attempts} attempts")

    async def put(
        self,
        target: Target,
        html_part: str,
        *,
        edit: int | None = None,
        markup: InlineKeyboardMarkup | None = None,
        quote: bool = False,
    ) -> list[int]:
        """Show one rendered part (edit ``edit`` or send a new message); returns the message ids used.

        A refused HTML part is sent as plain text; a part whose entities Telegram finds too
        large (ENTITIES_TOO_LONG: many long links) is sent in smaller parts, plain at the end.
        """
        try:
            return [await self._put_one(target, html_part, ParseMode.HTML, edit, markup, quote)]
        except BadRequest as exc:
            if _is(exc, "not modified") and edit is not None:
                return [edit]
            if edit is not None and _is(exc, "message to edit not found"):
                # Someone deleted the placeholder: the answer still arrives, as a new message.
                return await self.put(target, html_part, markup=markup, quote=quote)
            if _is(exc, "entities_too_long"):
                smaller = await self._put_smaller(target, html_part, edit, markup, quote)
                if smaller:
                    return smaller
            elif not (_is(exc, "can't parse entities") or _is(exc, "too long")):
                raise
            log.warning("Telegram refused a formatted message (%s); sending plain text", exc.message)
        plain = visible_text(html_part)
        pieces = split_plain(plain, 4000) or [plain]
        ids: list[int] = []
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            try:
                ids.append(
                    await self._put_one(
                        target, piece, None, edit if i == 0 else None, markup if last else None, quote and i == 0
                    )
                )
            except BadRequest as exc:
                if not (_is(exc, "not modified") and i == 0 and edit is not None):
                    raise
                ids.append(edit)
        return ids

    async def _put_smaller(
        self, target: Target, html_part: str, edit: int | None, markup: InlineKeyboardMarkup | None, quote: bool
    ) -> list[int]:
        """The part in two (or more) formatted pieces; [] when it cannot be cut any smaller."""
        pieces = split_message(html_part, max(2, telegram_length(html_part) // 2))
        if len(pieces) < 2:
            return []
        ids: list[int] = []
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            ids += await self.put(
                target, piece, edit=edit if i == 0 else None, markup=markup if last else None, quote=quote and i == 0
            )
        return ids

    async def _put_one(
        self,
        target: Target,
        text: str,
        parse_mode: str | None,
        edit: int | None,
        markup: InlineKeyboardMarkup | None,
        quote: bool,
    ) -> int:
        if edit is not None:

            async def do_edit(chat_id: int) -> Any:
                return await bot_api(
                    self.bot, "editMessageText",
                    chat_id=chat_id, message_id=edit, text=text, parse_mode=parse_mode, reply_markup=markup,
                )  # fmt: skip

            await self._attempt(target.chat_id, do_edit, idempotent=True)
            self.pacer.wrote(self.chat_id(target))
            return edit

        reply = (
            ReplyParameters(target.reply_to, allow_sending_without_reply=True) if quote and target.reply_to else None
        )

        async def while_waiting() -> None:
            if self.draft_id is not None and parse_mode == ParseMode.HTML and not self.gate.wait_time(target.chat_id):
                try:
                    await self.preview(target, self.draft_id, text)
                except RetryAfter as exc:
                    self.gate.close_for(target.chat_id, retry_seconds(exc))
                except TelegramError as exc:
                    log.info("could not show a waiting message as a draft in %s: %s", target.chat_id, exc)

        async def do_send(chat_id: int) -> Any:
            async with self.limiter.slot(while_waiting if target.is_private else None):
                started[0] = time.monotonic()
                return await bot_api(
                    self.bot, "sendMessage",
                    chat_id=chat_id, text=text, parse_mode=parse_mode, reply_markup=markup,
                    message_thread_id=target.thread_id, reply_parameters=reply,
                )  # fmt: skip

        started = [0.0]
        try:
            sent = await self._attempt(target.chat_id, do_send, idempotent=False)
        except MaybeSent as exc:
            # Most likely it arrived (the request was sent; the answer got lost): not sent again,
            # and not reported to the person as an error; the following parts still go out.
            log.warning("a message to chat %s may have arrived (%s); not sending it again", target.chat_id, exc.message)
            return UNKNOWN_MESSAGE
        self.pacer.wrote(self.chat_id(target))
        self.ids.saw(self.chat_id(target), int(sent["message_id"]), sent_at=started[0])
        return int(sent["message_id"])

    async def deliver(
        self, target: Target, markdown: str, buttons: Keyboard = (), slots: Sequence[int] = ()
    ) -> list[int]:
        """Deliver a complete Markdown text once: edit ``slots`` first, then send new messages."""
        parts = render_parts(markdown) or [self.pacing.placeholder]
        markup = keyboard(buttons)
        used: list[int] = []
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            edit = slots[i] if i < len(slots) else None
            ids = await self.put(target, part, edit=edit, markup=markup if last else None, quote=i == 0)
            used += [m for m in ids if m != UNKNOWN_MESSAGE]
        for extra in slots[len(parts) :]:
            with contextlib.suppress(TelegramError):
                await self.bot.delete_message(self.chat_id(target), extra)
        return used

    async def preview(self, target: Target, draft_id: int, html_part: str) -> None:
        """Show a draft in a private chat (plain text if the partial HTML is refused).

        An empty ``html_part`` shows Telegram's own "thinking" draft (Bot API 10.0: text optional).
        Sent through :func:`bot_api`: a draft's result is only ``true``, and PTB's method costs
        twice the CPU for it (two drafts an answer were the adapter's largest cost).
        """
        draft = functools.partial(
            bot_api, self.bot, "sendMessageDraft", chat_id=target.chat_id, draft_id=draft_id,
            message_thread_id=target.thread_id,
        )  # fmt: skip
        if not html_part:
            await draft(text="")
            return
        try:
            await draft(text=html_part, parse_mode=ParseMode.HTML)
        except BadRequest as exc:
            if not _is(exc, "can't parse entities"):
                raise
            await draft(text=visible_text(html_part)[:4000])
