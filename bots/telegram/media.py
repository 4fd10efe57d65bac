"""Telegram voice notes, audio and round video notes as the core's attachments.

The announced size is checked against the limit that applies before anything is downloaded:
the cloud Bot API serves bots files up to 20 MB, a self-hosted Bot API server (``TELEGRAM_API_URL``)
up to 2000 MB, and transcription takes up to 25 MB; a file over one is passed on without data and
with ``over_limit`` set, and the core says which limit it was.

A file is streamed into the spool in the data folder (:mod:`core.media.spool`), never held whole
in memory: the attachment carries the spool file's path. Without a spool (a library caller) the
bytes are downloaded into memory as before.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Sequence

from telegram import Audio, Bot, Document, Message, PhotoSize, VideoNote, Voice
from telegram._utils.files import is_local_file
from telegram.error import TelegramError

from bots.download import DownloadFailed
from bots.telegram.http import AiohttpRequest
from core.media import limits
from core.media.spool import Spool
from core.types import Attachment, FileLimit

log = logging.getLogger(__name__)

CLOUD_API = "https://api.telegram.org/"


def messenger_limit(bot: Bot) -> FileLimit:
    """The download limit of the Bot API server the bot talks to."""
    return limits.TELEGRAM_CLOUD if bot.base_url.startswith(CLOUD_API) else limits.TELEGRAM_LOCAL


async def audio_attachment(message: Message, spool: Spool | None = None) -> Attachment | None:
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
    over, data, path = await fetch_unless_over(message, media, kind, spool)
    return Attachment(kind, name, mime, media.file_size, data, over_limit=over, duration=duration, path=path)


Media = Voice | Audio | VideoNote | PhotoSize | Document


async def fetch_unless_over(
    message: Message, media: Media, kind: str, spool: Spool | None
) -> tuple[FileLimit | None, bytes | None, str | None]:
    """The limit the announced size is over (nothing fetched), else the file as :func:`fetch` gets it."""
    messenger = messenger_limit(message.get_bot())
    over = limits.over(kind, media.file_size, messenger)
    if over is not None:
        return over, None, None
    data, path = await fetch(media, spool, limits.fetch_limit(kind, messenger))
    return None, data, path


async def fetch(media: Media, spool: Spool | None, limit: FileLimit) -> tuple[bytes | None, str | None]:
    """The file: its spool file's path (streamed there), or its bytes when there is no spool;
    neither when the download failed."""
    try:
        tg_file = await media.get_file()
        if spool is None:
            return bytes(await tg_file.download_as_bytearray()), None
        path = spool.new_path()
        transport = media.get_bot().request
        if isinstance(transport, AiohttpRequest) and tg_file.file_path and not is_local_file(tg_file.file_path):
            await transport.download(tg_file.file_path, path, limit.size)
        else:
            await tg_file.download_to_drive(path)  # a local Bot API server's file is copied
        return None, str(path)
    except (TelegramError, DownloadFailed) as exc:
        log.warning("could not download file %s: %s", media.file_unique_id, exc)
        return None, None


async def photo_attachments(album: Sequence[Message], spool: Spool | None = None) -> tuple[Attachment, ...]:
    """The largest size of each photo in an album (or one message), fetched unless over a limit."""
    out: list[Attachment] = []
    for message in album:
        if not message.photo:
            continue
        best = message.photo[-1]
        over, data, path = await fetch_unless_over(message, best, "photo", spool)
        out.append(Attachment("photo", None, "image/jpeg", best.file_size, data, over_limit=over, path=path))
    return tuple(out)


class Albums:
    """Telegram delivers an album (a media group) as one update per photo; the first to arrive
    waits ``window`` seconds for the rest, and the album becomes one message."""

    def __init__(self, window: float = 0.8) -> None:
        self.window = window
        self._open: dict[str, list[Message]] = {}

    async def gather(self, message: Message) -> list[Message] | None:
        """Every message of the album once it is complete; None for the ones that joined another."""
        if message.media_group_id is None:
            return [message]
        key = f"{message.chat.id}:{message.media_group_id}"
        if key in self._open:
            self._open[key].append(message)
            return None
        self._open[key] = [message]
        try:
            await asyncio.sleep(self.window)
        finally:
            album = self._open.pop(key)
        return sorted(album, key=lambda m: m.message_id)


def lead(album: Sequence[Message]) -> Message:
    """The album's message that carries the caption (the first one when none does)."""
    return next((m for m in album if m.caption), album[0])
