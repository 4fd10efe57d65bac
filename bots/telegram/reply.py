"""Showing the core's reply events in Telegram, for one incoming message.

A :class:`LiveAnswer` shows an answer while it is generated (drafts in private chats, an
edited placeholder in groups); a :class:`TelegramReply` renders every kind of reply event.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from telegram import InputFile, ReactionTypeEmoji
from telegram.constants import ChatAction, ParseMode
from telegram.error import RetryAfter, TelegramError
from telegram.ext import Application

from bots.events import show
from bots.intake import Marker
from bots.live import RetryLater, Throttle, TypingLoop
from bots.telegram.marked import PLACEHOLDER, place_placeholder, send_marked
from bots.telegram.probe import Sending
from bots.telegram.render import render_parts
from bots.telegram.send import Keyboard, Pacing, Sender, Target, retry_seconds
from core.intake import deliverable
from core.types import AdminAlert, FileReply, Progress, ReplyEvent

if TYPE_CHECKING:
    from bots.telegram.process import TelegramBot

log = logging.getLogger(__name__)

PHOTO_LIMIT = 10 * 1000 * 1000  # sendPhoto takes photos up to 10 MB; larger go as documents


_draft_ids = itertools.count(1)


def new_draft_id() -> int:
    """A draft id of its own: a draft replaces only the draft of the same id in its chat."""
    return next(_draft_ids)


class LiveAnswer:
    """One streamed answer: drafts (private) or an edited placeholder (groups), then the final text.

    Previews are best effort and paced; the final text is delivered exactly once.
    """

    def __init__(  # ``stray``: a placeholder an earlier run marked but did not record (marked.py)
        self, sender: Sender, target: Target, pacing: Pacing, on_shown: Marker | None = None,
        resume: int | None = None, stray: Sending | None = None,
    ) -> None:  # fmt: skip
        self.sender = sender
        self.stray = stray
        self.target = target
        self.pacing = pacing
        self.draft_id = new_draft_id()
        self.on_shown = on_shown
        # Group messages showing the answer so far; ``resume``: a placeholder an earlier run left.
        self.slots: list[int] = [resume] if resume else []
        self._shown: list[str] = [""] if resume else []
        self._draft = ""  # the draft on screen (private chats), sent again before it lapses
        self._draft_at = 0.0
        self.drafted = False  # a draft (the "thinking" one at least) is on screen in this private chat
        self._draft_lock = asyncio.Lock()
        self._closed = False
        self._keeper: asyncio.Task[None] | None = None
        interval = pacing.draft_interval if target.is_private else pacing.edit_interval
        self._throttle = Throttle(
            self._preview, interval, f"preview in chat {target.chat_id}", delay=self._delay, settle=pacing.settle
        )

    def _delay(self) -> float:
        """Flood control, and in groups the chat's shared pace (every answer there takes turns)."""
        wait = self.sender.gate.wait_time(self.target.chat_id)
        if self.target.is_private:
            return wait
        return max(wait, self.sender.pacer.reserve(self.target.chat_id))

    @property
    def latest(self) -> str:
        """The newest text the core produced for this answer."""
        return self._throttle.latest

    async def start(self) -> None:
        """Show that an answer is coming (a "thinking" draft or a placeholder) and start the preview pump."""
        if self.target.is_private:
            try:
                await self._send_draft("")
            except RetryAfter as exc:
                self.sender.gate.close_for(self.target.chat_id, retry_seconds(exc))
            except TelegramError as exc:
                log.info("could not show a thinking draft in %s: %s", self.target.chat_id, exc)
                self._draft_at = time.monotonic()  # typing stands in; the keeper tries again later, not at once
            self._keeper = asyncio.create_task(self._keep_draft())
        elif not self.slots and not self.sender.gate.wait_time(self.target.chat_id):
            try:
                self.slots = [await place_placeholder(self.sender, self.target, self.on_shown, self.stray)]
                self._shown = [self.pacing.placeholder]
                self.sender.pacer.wrote(self.target.chat_id)
            except RetryAfter as exc:
                self.sender.gate.close_for(self.target.chat_id, retry_seconds(exc))
            except TelegramError as exc:
                log.warning("could not send a placeholder to %s: %s", self.target.chat_id, exc)
        self._throttle.start()

    def update(self, text: str, ended: bool = False) -> None:
        """The answer so far (Markdown); ``ended``: no more previews, the final text follows."""
        if ended:
            self._throttle.end(text)
        else:
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
            await self._send_draft(parts[-1])
            return
        chat_id = self.sender.chat_id(self.target)
        for i, part in enumerate(parts):
            if i < len(self._shown) and self._shown[i] == part:
                continue
            if i < len(self.slots):
                await self.sender.bot.edit_message_text(
                    part, chat_id=chat_id, message_id=self.slots[i], parse_mode=ParseMode.HTML
                )
                self._shown[i] = part
            else:
                sent = await self.sender.bot.send_message(
                    chat_id, part, parse_mode=ParseMode.HTML, message_thread_id=self.target.thread_id
                )
                self.slots.append(sent.message_id)
                self._shown.append(part)

    async def _send_draft(self, html_part: str) -> None:
        async with self._draft_lock:
            if self._closed:
                return
            await self.sender.preview(self.target, self.draft_id, html_part)
            self._draft, self._draft_at = html_part, time.monotonic()
            self.drafted = True

    async def _keep_draft(self) -> None:
        """While the model pauses, send the draft again before Telegram lets it lapse (about 30 s)."""
        refresh = self.pacing.draft_refresh
        while not self._closed:
            await asyncio.sleep(max(0.0, self._draft_at + refresh - time.monotonic()))
            if self._closed or time.monotonic() - self._draft_at < refresh:
                continue
            if self.sender.gate.wait_time(self.target.chat_id):
                self._draft_at = time.monotonic() - refresh + self.sender.gate.wait_time(self.target.chat_id)
                continue
            try:
                await self._send_draft(self._draft)
            except RetryAfter as exc:
                self.sender.gate.close_for(self.target.chat_id, retry_seconds(exc))
            except TelegramError as exc:
                log.info("could not refresh the draft in %s: %s", self.target.chat_id, exc)
                self._draft_at = time.monotonic()

    def abandon(self) -> None:
        """The answer was cancelled: stop refreshing the draft at once (without waiting)."""
        self._closed = True
        if self._keeper is not None:
            self._keeper.cancel()
            self._keeper = None

    async def close(self) -> None:
        """Stop previews and wait for one in flight, so it cannot land after the final text."""
        await self._throttle.close()
        async with self._draft_lock:  # a refresh in flight lands first
            self._closed = True
        if self._keeper is not None:
            keeper, self._keeper = self._keeper, None
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

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
        self.sender = bot.sender(app)
        self.live: LiveAnswer | None = None
        self.typing = TypingLoop(self._send_typing, bot.pacing.typing_interval)
        self.progress_id: int | None = None
        self.progress_at = 0.0
        self.on_shown: Marker | None = None
        """Records (durably) what is visible: a group placeholder's id, or that a final send starts."""
        self.resume: int | None = None
        """A placeholder an earlier run left for this answer: edited into it, nothing sent anew."""
        self.resume_mark: Sending | None = None
        """Where an earlier run was sending new messages when it stopped (``marked.py``)."""
        self.event = -1  # the deliverable event being shown, counted as the core recorded them

    async def _send_typing(self) -> None:
        if self.bot.gate.wait_time(self.target.chat_id):
            return
        try:
            await self.app.bot.send_chat_action(
                self.sender.chat_id(self.target), ChatAction.TYPING, message_thread_id=self.target.thread_id
            )
        except RetryAfter as exc:
            self.bot.gate.close_for(self.target.chat_id, retry_seconds(exc))
        except TelegramError as exc:
            log.debug("typing action failed: %s", exc)

    async def _live(self) -> LiveAnswer:
        if self.live is None:
            live = LiveAnswer(self.sender, self.target, self.bot.pacing, self.on_shown, self.resume, self.resume_mark)
            self.live = live
            self.sender.draft_id = live.draft_id if self.target.is_private else None
            await live.start()
            if self.resume_mark is not None and self.resume_mark.event == PLACEHOLDER:
                self.resume_mark = None  # the stray placeholder is dealt with
        return self.live

    async def render(self, event: ReplyEvent) -> None:
        """Show one reply event (one an earlier run is known to have delivered is skipped)."""
        if deliverable(event):
            self.event += 1
            if self.resume_mark is not None and self.event < self.resume_mark.event:
                return
        await show(self, event)

    async def stream_start(self) -> None:
        """An answer is coming: a placeholder and typing (groups), or a "thinking" draft (private).

        A private chat's draft is itself the bot's chat action (MTProto delivers it as
        ``sendMessageTextDraftAction``, the slot ``sendChatAction`` "typing" fills; clients show
        it as typing), kept up by :class:`LiveAnswer`: ``sendChatAction`` is sent there only
        when the draft was refused (a quarter of the Bot API calls of a short answer saved).
        """
        if not self.target.is_private:
            self.typing.start()
        live = await self._live()
        if self.target.is_private and not live.drafted:
            self.typing.start()

    async def delta(self, markdown: str, ended: bool = False) -> None:
        """The answer so far, shown paced (no more once ``ended``)."""
        (await self._live()).update(markdown, ended)

    async def final(self, markdown: str, buttons: Keyboard, *, marked: bool = True) -> None:
        """The complete answer: the placeholder's last edit, or new messages (``marked``: see
        :meth:`_send_marked`)."""
        # Stop typing and previews before anything awaits: a fast answer needs neither.
        self.typing.halt()
        if self.live is None and self.resume is not None:
            self.live = LiveAnswer(self.sender, self.target, self.bot.pacing, self.on_shown, self.resume)
        if self.live is None and self.resume_mark is not None and self.resume_mark.event == PLACEHOLDER:
            await self._live()  # an earlier run's placeholder may be there: a new one takes its place
        if self.live is not None and self.live.slots:
            live, self.live = self.live, None
            await live.finish(markdown, buttons)
        else:
            if self.live is not None:
                await self.live.close()
                self.live = None
            if marked:
                await self._send_marked(markdown, buttons)
            else:
                await self.sender.deliver(self.target, markdown, buttons)
        await self.typing.stop()

    async def _send_marked(self, markdown: str, buttons: Keyboard) -> None:
        """Send the final text as new messages, each part after its durable ``sending`` mark: a
        restart asks Telegram whether the marked part arrived before sending it (``marked.py``)."""
        if self.on_shown is None:
            await self.sender.deliver(self.target, markdown, buttons)
            return
        await send_marked(
            self.sender, self.target, markdown, buttons,
            event=self.event, mark=self.on_shown, resume=self.resume_mark, search=self.bot.search,
        )  # fmt: skip

    async def notice(self, markdown: str, buttons: Keyboard) -> None:
        """A message from the bot itself, shown like a final answer but not marked ``sending``:
        an answer may follow it (a voice note's transcript, a document's cut note), and a restart
        must still deliver that; the notice may then be shown twice, the answer is never lost."""
        await self.final(markdown, buttons, marked=False)

    async def file(self, event: FileReply) -> None:
        """A picture as a photo (``/image``), anything else as a document, with its caption."""
        bot = self.app.bot
        send: Callable[..., Awaitable[object]]
        if event.mime_type.startswith("image/") and len(event.data) <= PHOTO_LIMIT:
            send, chat_id = bot.send_photo, self.target.chat_id
        elif event.mime_type == "audio/ogg":  # a spoken answer (/voice on): OGG/Opus plays as a voice note
            send, chat_id = bot.send_voice, self.target.chat_id
        else:
            send, chat_id = bot.send_document, self.sender.chat_id(self.target)
        file = InputFile(event.data, filename=event.filename)
        await send(chat_id, file, caption=event.caption, message_thread_id=self.target.thread_id)

    async def alert(self, event: AdminAlert) -> None:
        """Deliver an alert to the Telegram people among its recipients."""
        await self.bot.send_alert(self.app, event)

    async def react(self, emoji: str) -> None:
        """React to the person's message (decoration: a refusal is only logged)."""
        if self.target.message_id is None:
            return
        try:
            await self.app.bot.set_message_reaction(
                self.sender.chat_id(self.target), self.target.message_id, ReactionTypeEmoji(emoji)
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

    def cancel(self) -> None:
        """The reading was cancelled: abandon typing and the draft's refreshes at once."""
        self.typing.cancel()
        if self.live is not None:
            self.live.abandon()

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
                await self.app.bot.delete_message(self.sender.chat_id(self.target), message_id)
