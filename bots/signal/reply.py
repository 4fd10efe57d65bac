"""Showing the core's reply events in Signal, for one incoming message.

One message is sent once an answer's first words have waited :data:`SETTLE` (an answer whole by
then goes out as one message, not a message and its edit) and edited (``edit_timestamp``) at most once
per interval while it streams, the interval widening as the answer grows and the edits capped
below what Signal clients accept (:data:`MAX_EDITS`, the last edit kept for the final text; were
the cap reached anyway, the final text comes as a new message). The final text is delivered
once, falling back to plain text if the styled one is refused. Buttons become numbered choices;
typing shows meanwhile.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from signalbot import DataMessageContext, SendMessage, SentMessage, SignalAPIError, SignalBot, TextMode

from bots.choices import with_choices
from bots.events import show
from bots.intake import SENDING
from bots.live import Throttle, TypingLoop
from bots.signal.markup import styled_markup
from bots.signal.render import render_signal
from core.types import AdminAlert, Button, ChatKey, FileReply, Progress, ReplyEvent

if TYPE_CHECKING:
    from bots.signal.process import SignalAdapter

log = logging.getLogger(__name__)

MAX_EDITS = 30
"""Edits of one message we send at most. Signal-iOS drops every incoming edit of a message after
its 100th (``EditManagerImpl.maxReceiveEdits``), so the person would be left with a stale text;
well below that, with room for the final edit."""
EDITS_PER_STEP = 10
"""The streaming interval widens by one base interval every this many edits (long answers)."""

SETTLE = 0.02
"""Seconds an answer's first words wait before they are sent: a fast model's whole answer goes
out as one message, not a message edited a moment later (clients label an edited message)."""


def styled(markdown: str, *, plain: bool = False) -> SendMessage:
    """A message for Signal from Markdown, with its text styles (``plain``: without them).

    Marker characters in the text are escaped, so the styles travel with any text. The mode
    is always explicit, so a server whose default is styled cannot eat a literal asterisk.
    """
    text, styles = render_signal(markdown)
    if plain or not styles:
        return SendMessage(text=text, text_mode=TextMode.NORMAL)
    return SendMessage(text=styled_markup(text, styles), text_mode=TextMode.STYLED)


async def guard(call: Awaitable[Any], what: str) -> Any:
    """Await ``call``; a refusal is logged and becomes None (for decoration: typing, reactions)."""
    try:
        return await call
    except (SignalAPIError, ValueError) as e:
        log.info("Signal: could not %s: %s", what, e)
        return None


class SignalReply:
    """Renders the reply events for one incoming message into Signal messages."""

    def __init__(
        self,
        adapter: SignalAdapter,
        context: DataMessageContext | None,
        chat: ChatKey,
        *,
        recipient: str | None = None,
        on_shown: Callable[[str], Awaitable[None]] | None = None,
        resume: int | None = None,
    ) -> None:
        self.adapter = adapter
        self.context = context  # None for an answer handed over after a restart: sent to ``recipient``
        self.recipient = recipient
        self.chat = chat
        self.on_shown = on_shown  # records durably which message shows the answer
        self.stream: SentMessage | None = None  # the message being edited while streaming
        if resume and recipient:  # a stub an earlier run left: the final edit supersedes it
            self.stream = SentMessage.from_send_message(SendMessage(text=""), recipient, resume)
        self.shown = ""  # the Markdown last sent to it
        self.stream_failed = False  # the first send of a streamed answer failed: send it whole
        self.typing = TypingLoop(self._send_typing, adapter.typing_refresh)
        self.edits = 0  # edits of the streamed message so far (clients drop them past a cap)
        self.preview = Throttle(
            self._show,
            lambda: adapter.edit_interval * (1 + self.edits // EDITS_PER_STEP),
            f"Signal preview in {chat}",
            settle=SETTLE,
        )
        self.progress_message: SentMessage | None = None
        self.progress_edits = 0
        self.lock = asyncio.Lock()

    async def render(self, event: ReplyEvent) -> None:
        """Show one reply event."""
        await show(self, event)

    async def stream_start(self) -> None:
        """An answer is coming: type until it is complete."""
        self.typing.start()

    async def react(self, emoji: str) -> None:
        """React to the person's message."""
        if self.context is not None:
            await guard(self.context.react(emoji), "react")

    async def alert(self, event: AdminAlert) -> None:
        """Deliver an alert to the Signal people among its recipients."""
        await self.adapter.send_alert(event)

    async def _send_typing(self) -> None:
        if self.context is not None:
            await guard(self.context.start_typing(), "start typing")

    async def stop_typing(self) -> None:
        """Stop the typing loop and tell Signal the person need not wait any longer."""
        if await self.typing.stop() and self.context is not None:
            await guard(self.context.stop_typing(), "stop typing")

    async def delta(self, markdown: str, ended: bool = False) -> None:
        """The answer so far: the first words are sent after :data:`SETTLE`, later versions paced as edits.

        Once ``ended`` nothing more is previewed: the final text follows as soon as it is stored,
        as the stream's last edit. An answer with no words out yet is sent whole at once (it is
        the final text, which then needs no edit): it would otherwise wait for the stored answer.
        """
        if ended:
            self.preview.end(markdown)
            if self.stream is None and not self.stream_failed:
                await self._show(markdown)
            return
        self.preview.start()
        self.preview.update(markdown)

    async def _show(self, markdown: str) -> None:
        if self.stream_failed or not markdown.strip():
            return
        async with self.lock:
            if self.stream is None:
                try:
                    self.stream = await self.send(styled(markdown))
                except SignalAPIError as e:  # e.g. rate limited: do not lose the answer over it
                    log.info("Signal: the start of an answer could not be sent (%s); it follows whole", e)
                    self.stream_failed = True
                    return
                if self.on_shown is not None:  # after a restart the final edit supersedes this stub
                    await self.on_shown(str(self.stream.timestamp))
            else:
                if self.edits >= MAX_EDITS - 1:
                    return  # the last edit is kept for the final text
                try:
                    await self.bot().messages.edit(styled(markdown), self.stream)
                except SignalAPIError as e:  # e.g. rate limited: skip this edit, the final one follows
                    log.info("Signal: an edit while streaming failed: %s", e)
                    return
                self.edits += 1
            self.shown = markdown

    async def final(self, markdown: str, buttons: Sequence[Sequence[Button]]) -> None:
        """Deliver the complete answer: the streamed message's last edit, or a new message."""
        await self.preview.close()
        choices = self.adapter.reader.choices.remember(self.chat.chat_id, buttons)
        full = with_choices(markdown, choices)
        async with self.lock:
            stream, shown = self.stream, self.shown
            self.stream, self.shown = None, ""
            if stream is None or self.edits >= MAX_EDITS:  # past the cap an edit would be dropped
                if self.on_shown is not None:  # a new message that no later run could replace
                    await self.on_shown(SENDING)
                await self.deliver(full)
            elif full != shown:  # already showing exactly this: an edit would change nothing
                await self.deliver(full, edit=stream)
            self.edits = 0
        await self.stop_typing()

    async def deliver(self, markdown: str, edit: SentMessage | None = None) -> None:
        """Send (or finish by editing) one complete message, falling back to plain text."""
        attempts: list[tuple[bool, SentMessage | None]] = [(False, edit)]
        if edit is not None:
            attempts += [(True, edit), (True, None)]  # plain edit, then a new plain message
        else:
            attempts += [(True, None)]
        for i, (plain, target) in enumerate(attempts):
            message = styled(markdown, plain=plain)
            try:
                if target is None:
                    await self.send(message)
                else:
                    await self.bot().messages.edit(message, target)
                return
            except SignalAPIError as e:
                log.warning("Signal: delivering a reply failed (attempt %d): %s", i + 1, e)
                await asyncio.sleep(min(self.adapter.edit_interval, 1.0) * (i + 1))
        log.error("Signal: gave up delivering a reply in %s", self.chat)

    async def notice(self, markdown: str, buttons: Sequence[Sequence[Button]]) -> None:
        """A message from the bot itself (not the model), with its choices."""
        choices = self.adapter.reader.choices.remember(self.chat.chat_id, buttons)
        async with self.lock:
            await self.deliver(with_choices(markdown, choices))

    async def file(self, event: FileReply) -> None:
        """A file as a base64 attachment, its caption styled."""
        encoded = base64.b64encode(event.data).decode()
        name = event.filename.replace(";", "_").replace(",", "_")
        message = styled(event.caption or "")
        message.base64_attachments = [f"data:{event.mime_type};filename={name};base64,{encoded}"]
        async with self.lock:
            await guard(self.send(message), "send a file")

    async def progress(self, event: Progress) -> None:
        """One progress message, edited as the work goes on."""
        text = f"{event.text} ({event.done}/{event.total})"
        async with self.lock:
            done = event.done >= event.total
            if self.progress_message is not None and self.progress_edits >= MAX_EDITS - 1 and not done:
                return  # clients drop edits past their cap: keep the last one for "done"
            if self.progress_message is None:
                sent = await guard(self.send(styled(text)), "send progress")
                self.progress_message = sent if isinstance(sent, SentMessage) else None
            else:
                await guard(self.bot().messages.edit(styled(text), self.progress_message), "edit progress")
                self.progress_edits += 1

    async def finish(self) -> None:
        """After the last event: never leave a half-streamed answer or a typing indicator."""
        await self.preview.close()
        latest = self.preview.latest
        if self.stream is not None and latest and latest != self.shown:
            await self.final(latest, ())
        await self.stop_typing()

    def bot(self) -> SignalBot:
        """The running signalbot (an error a send can report once the adapter stopped)."""
        bot = self.adapter.bot
        if bot is None:
            raise SignalAPIError("the Signal adapter is stopped")
        return bot

    async def send(self, message: SendMessage) -> SentMessage:
        """Send a new message into the chat."""
        if self.context is None:
            if self.recipient is None:
                raise SignalAPIError("no recipient for a recovered answer")
            return await self.bot().messages.send(message, self.recipient)
        return await self.context.send(message)
