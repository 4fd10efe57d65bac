"""Telegram voice notes, audio and round video notes as the core's attachments.

The announced size is checked against the limit that applies before anything is downloaded:
the cloud Bot API serves bots files up to 20 MB, a self-hosted Bot API server (``TELEGRAM_API_URL``)
up to 2000 MB, and transcription takes up to 25 MB; a file over one is passed on without data and
with ``over_limit`` set, and the core says which limit it was.
"""

from __future__ import annotations

import datetime as dt
import logging

from telegram import Audio, Bot, Message, VideoNote, Voice
from telegram.error import TelegramError

from core.media import limits
from core.types import Attachment, FileLimit

log = logging.getLogger(__name__)

CLOUD_API = "https://api.telegram.org/"


def messenger_limit(bot: Bot) -> FileLimit:
    """The download limit of the Bot API server the bot talks to."""
    return limits.TELEGRAM_CLOUD if bot.base_url.startswith(CLOUD_API) else limits.TELEGRAM_LOCAL


async def audio_attachment(message: Message) -> Attachment | None:
    """A voice note, audio file or round video note, downloaded unless over a limit; else None."""
    media: Voice | Audio | VideoNote
    if message.voice is not None:
        media, kind, name = message.voice, "voice", "voice.ogg"
        mime = message.voice.mime_type or "audio/ogg"
    elif message.audio is not None:
        media, kind = message.audio, "audio"
        name, mime = message.audio.file_name or "audio", message.audio.mime_type or "audio/mpeg"
    elif message.video_note is not None:
        # A round video note is spoken like a voice note; the transcription API takes MP4.
        media, kind, name, mime = message.video_note, "voice", "video_note.mp4", "video/mp4"
    else:
        return None
    # The raw seconds: PTB 22 warns on ``.duration`` while it moves to timedelta values.
    length = media.to_dict().get("duration") or 0
    duration = length.total_seconds() if isinstance(length, dt.timedelta) else float(length)
    size = media.file_size
    over = limits.over(kind, size, messenger_limit(message.get_bot()))
    if over is not None:
        return Attachment(kind, name, mime, size, over_limit=over, duration=duration)
    data: bytes | None = None
    try:
        tg_file = await media.get_file()
        data = bytes(await tg_file.download_as_bytearray())
    except TelegramError as exc:
        log.warning("could not download %s %s: %s", kind, media.file_unique_id, exc)
    return Attachment(kind, name, mime, size, data, duration=duration)
