"""Telegram's "thinking" draft at receipt, for a voice note or a document in a private chat.

The core shows that draft itself once it starts reading a file (:mod:`core.media.voice`,
:mod:`core.media.documents`), but the adapter hands it the message only after the download, and
shows the core's events only once the message is durably recorded: with twenty chats sending
files at once that was 0.1-1 s of a silent chat. So the adapter sends the same draft as soon as it
takes the update, beside the download. A draft is not a message: it is never recorded, a kill
before the record leaves nothing behind, and the answer's own draft or first message replaces it.

Only where the core would show it anyway (a file within its limits that Ferry reads at length,
in a private chat) and only while no other message of the chat is in flight, so that the draft of
an answer still being written is never covered. A message the core refuses (a person not let in,
a spent budget) shows the draft until the refusal's message replaces it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from telegram import Message
from telegram.constants import ChatType
from telegram.error import RetryAfter, TelegramError

from bots.telegram.media import messenger_limit
from bots.telegram.reply import new_draft_id
from bots.telegram.send import Sender, Target, retry_seconds
from core.media import limits
from core.media.documents import kind_of
from core.types import Attachment

log = logging.getLogger(__name__)


def read_at_length(message: Message) -> bool:
    """Whether the core will transcribe or read the message's file (and show its thinking draft)."""
    audio = message.voice or message.audio or message.video_note
    doc = message.document
    if audio is not None:
        size, kind = audio.file_size, "voice"
    elif doc is not None and kind_of(Attachment("document", doc.file_name, doc.mime_type)) is not None:
        size, kind = doc.file_size, "document"
    else:
        return False  # no file, an import (.txt, .zip) or a type Ferry does not read: a sentence, no draft
    return limits.over(kind, size, messenger_limit(message.get_bot())) is None


class InFlight:
    """One message of a chat, from being taken until its answer was shown to the end."""

    def __init__(self, counts: Counter[int], chat_id: int, early: bool) -> None:
        self.early = early
        """Whether to show the thinking draft now."""
        self._counts = counts
        self._chat_id = chat_id
        self._open = True

    def done(self) -> None:
        """The answer is shown to its end, or there is none (once; again is harmless)."""
        if self._open:
            self._open = False
            self._counts[self._chat_id] -= 1
            if self._counts[self._chat_id] <= 0:
                del self._counts[self._chat_id]


class EarlyThinking:
    """Counts each chat's messages in flight and shows the thinking draft for a file that
    arrives when none is (an answer still being shown is not covered)."""

    def __init__(self, sender: Callable[[], Sender]) -> None:
        self._sender = sender
        self._in_flight: Counter[int] = Counter()

    def arrived(self, message: Message) -> InFlight:
        """The message, counted in flight until :meth:`InFlight.done`."""
        chat = message.chat.id
        alone = not self._in_flight[chat]
        self._in_flight[chat] += 1
        early = alone and message.chat.type == ChatType.PRIVATE and read_at_length(message)
        return InFlight(self._in_flight, chat, early)

    async def show(self, target: Target) -> None:
        """Send Telegram's thinking draft (best effort: a refusal only closes the flood gate)."""
        sender = self._sender()
        if sender.gate.wait_time(target.chat_id):
            return
        try:
            await sender.preview(target, new_draft_id(), "")
        except RetryAfter as exc:
            sender.gate.close_for(target.chat_id, retry_seconds(exc))
        except TelegramError as exc:
            log.info("could not show a thinking draft in %s: %s", target.chat_id, exc)
