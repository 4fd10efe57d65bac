"""Showing the core's reply events in Telegram, for one incoming message.

A :class:`LiveAnswer` shows an answer while it is generated (drafts in private chats, an
edited placeholder in groups); a :class:`TelegramReply` renders every kind of reply event.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from typing import TYPE_CHECKING, Any

from telegram import InputFile, ReactionTypeEmoji, ReplyParameters
from telegram.constants import ChatAction, ParseMode
from telegram.error import RetryAfter, TelegramError
from telegram.ext import Application

from bots.events import show
from bots.live import RetryLater, Throttle, TypingLoop
from bots.telegram.render import render_parts
from bots.telegram.send import Keyboard, Pacing, Sender, Target, retry_seconds
from core.types import AdminAlert, FileReply, Progress, ReplyEvent

if TYPE_CHECKING:
    from bots.telegram.process import TelegramBot

log = logging.getLogger(__name__)


class LiveAnswer:
    """One streamed answer: drafts (private) or an edited placeholder (groups), then the final text.

    Previews are best effort and paced; the final text is delivered exactly once.
    """

    _draft_ids = itertools.count(1)

    def __init__(self, sender: Sender, target: Target, pacing: Pacing) -> None:
        self.sender = sender
        self.target = target
        self.pacing = pacing
        self.draft_id = next(self._draft_ids)
        self.slots: list[int] = []  # group messages showing the answer so far
        self._shown: list[str] = []
        interval = pacing.draft_interval if target.is_private else pacing.edit_interval
        self._throttle = Throttle(
            self._preview, interval, f"preview in chat {target.chat_id}",
            delay=lambda: sender.gate.wait_time(target.chat_id),
        )

    @property
    def latest(self) -> str:
        """The newest text the core produced for this answer."""
        return self._throttle.latest

    async def start(self) -> None:
        """Show that an answer is coming (a placeholder in groups) and start the preview pump."""
        if not self.target.is_private and not self.sender.gate.wait_time(self.target.chat_id):
            reply = (
                ReplyParameters(self.target.reply_to, allow_sending_without_reply=True)
                if self.target.reply_to
                else None
            )
            try:
                sent = await self.sender.bot.send_message(
                    self.target.chat_id,
                    self.pacing.placeholder,
                    message_thread_id=self.target.thread_id,
                    reply_parameters=reply,
                )
                self.slots = [sent.message_id]
                self._shown = [self.pacing.placeholder]
            except RetryAfter as exc:
                self.sender.gate.close_for(self.target.chat_id, retry_seconds(exc))
            except TelegramError as exc:
                log.warning("could not send a placeholder to %s: %s", self.target.chat_id, exc)
        self._throttle.start()

    def update(self, text: str) -> None:
        """The answer so far (Markdown)."""
        self._throttle.update(text)

    async def _preview(self, markdown: str) -> None:
        try:
            await self._show(markdown)
        except RetryAfter as exc:
            # Skip previews until the gate opens; the newest text is shown after that.
            self.sender.gate.close_for(self.target.chat_id, retry_seconds(exc))
            raise RetryLater from exc

    async def _show(self, markdown: str) -> None:
        parts = render_parts(markdown)
        if not parts:
            return
        if self.target.is_private:
            await self.sender.preview(self.target, self.draft_id, parts[-1])
            return
        for i, part in enumerate(parts):
            if i < len(self._shown) and self._shown[i] == part:
                continue
            if i < len(self.slots):
                await self.sender.bot.edit_message_text(
                    part, chat_id=self.target.chat_id, message_id=self.slots[i], parse_mode=ParseMode.HTML
                )
                self._shown[i] = part
            else:
                sent = await self.sender.bot.send_message(
                    self.target.chat_id, part, parse_mode=ParseMode.HTML, message_thread_id=self.target.thread_id
                )
                self.slots.append(sent.message_id)
                self._shown.append(part)

    async def close(self) -> None:
        """Stop previews and wait for one in flight, so it cannot land after the final text."""
        await self._throttle.close()

    async def finish(self, markdown: str, buttons: Keyboard = ()) -> None:
        """Deliver the final text: new messages in private chats, the placeholder's edit in groups."""
        await self.close()
        await self.sender.deliver(self.target, markdown, buttons, slots=self.slots)
        self.slots = []


class TelegramReply:
    """Renders the reply events for one incoming message."""

    def __init__(self, bot: TelegramBot, app: Application[Any, Any, Any, Any, Any, Any], target: Target) -> None:
        self.bot = bot
        self.app = app
        self.target = target
        self.sender = Sender(app, bot.gate, bot.pacing)
        self.live: LiveAnswer | None = None
        self.typing = TypingLoop(self._send_typing, bot.pacing.typing_interval)
        self.progress_id: int | None = None
        self.progress_at = 0.0

    async def _send_typing(self) -> None:
        if self.bot.gate.wait_time(self.target.chat_id):
            return
        try:
            await self.app.bot.send_chat_action(
                self.target.chat_id, ChatAction.TYPING, message_thread_id=self.target.thread_id
            )
        except RetryAfter as exc:
            self.bot.gate.close_for(self.target.chat_id, retry_seconds(exc))
        except TelegramError as exc:
            log.debug("typing action failed: %s", exc)

    async def _live(self) -> LiveAnswer:
        if self.live is None:
            self.live = LiveAnswer(self.sender, self.target, self.bot.pacing)
            await self.live.start()
        return self.live

    async def render(self, event: ReplyEvent) -> None:
        """Show one reply event."""
        await show(self, event)

    async def stream_start(self) -> None:
        """An answer is coming: type, and show a placeholder (groups) or drafts (private)."""
        self.typing.start()
        await self._live()

    async def delta(self, markdown: str) -> None:
        """The answer so far, shown paced."""
        (await self._live()).update(markdown)

    async def final(self, markdown: str, buttons: Keyboard) -> None:
        """The complete answer: the placeholder's last edit, or new messages."""
        # Stop typing and previews before anything awaits: a fast answer needs neither.
        self.typing.halt()
        if self.live is not None:
            live, self.live = self.live, None
            await live.finish(markdown, buttons)
        else:
            await self.sender.deliver(self.target, markdown, buttons)
        await self.typing.stop()

    async def notice(self, markdown: str, buttons: Keyboard) -> None:
        """A message from the bot itself, shown like a final answer."""
        await self.final(markdown, buttons)

    async def file(self, event: FileReply) -> None:
        """A document, with its caption."""
        await self.app.bot.send_document(
            self.target.chat_id,
            InputFile(event.data, filename=event.filename),
            caption=event.caption,
            message_thread_id=self.target.thread_id,
        )

    async def alert(self, event: AdminAlert) -> None:
        """Deliver an alert to the Telegram people among its recipients."""
        await self.bot.send_alert(self.app, event)

    async def react(self, emoji: str) -> None:
        """React to the person's message (decoration: a refusal is only logged)."""
        if self.target.message_id is None:
            return
        try:
            await self.app.bot.set_message_reaction(
                self.target.chat_id, self.target.message_id, ReactionTypeEmoji(emoji)
            )
        except TelegramError as exc:  # a reaction is decoration; the answer goes on
            log.info("could not react in chat %s: %s", self.target.chat_id, exc)

    async def progress(self, event: Progress) -> None:
        """One progress message, edited at most once per edit interval until done."""
        now = time.monotonic()
        done = event.done >= event.total
        if self.progress_id is not None and not done and now - self.progress_at < self.bot.pacing.edit_interval:
            return
        self.progress_at = now
        slots = [self.progress_id] if self.progress_id is not None else []
        ids = await self.sender.deliver(self.target, event.text, slots=slots)
        self.progress_id = ids[0] if ids else None

    async def fail(self, text: str) -> None:
        """After an adapter error: one sentence for the person, replacing any placeholder."""
        await self.typing.stop()
        live, self.live = self.live, None
        try:
            if live is not None:
                await live.finish(text)
            else:
                await self.sender.deliver(self.target, text)
        except Exception:
            log.exception("could not tell chat %s about an error", self.target.chat_id)

    async def close(self) -> None:
        """The core is done: finish a stream it left open (shouldn't happen) and stop typing."""
        await self.typing.stop()
        if self.live is None:
            return
        live, self.live = self.live, None
        if live.latest:
            await live.finish(live.latest)
            return
        await live.close()
        for message_id in live.slots:
            with contextlib.suppress(TelegramError):
                await self.app.bot.delete_message(self.target.chat_id, message_id)
