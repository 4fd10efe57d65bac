"""Signal attachments: which are fetched, the long-text attachment, and removal after reading.

signal-cli keeps every received attachment on disk until someone deletes it
(``DELETE /v1/attachments/{id}``); the adapter deletes each one once the message was read, so a
busy bot's disk does not fill with voice notes. A text over 2,000 bytes arrives with its whole
text in the body *and* as a ``text/x-signal-plain`` attachment (signal-cli reassembles it):
that attachment is not a second message and is dropped. An attachment the core reads is streamed
into the spool in the data folder (:mod:`core.media.spool`), as Telegram's files are.
"""

from __future__ import annotations

import logging

import aiohttp

from bots.download import DownloadFailed, stream_to_file
from core.media import limits
from core.media.spool import Spool

log = logging.getLogger(__name__)

LONG_TEXT = "text/x-signal-plain"
FETCHED_KINDS = frozenset({"document", "voice", "audio", "photo"})
"""Kinds the core reads, so their bytes are fetched (the rest only need their kind)."""


def is_long_text(content_type: str | None) -> bool:
    """Whether an attachment is the long-text copy of the message body."""
    return (content_type or "").split(";", 1)[0].strip().lower() == LONG_TEXT


async def fetch_attachment(
    session: aiohttp.ClientSession, base_url: str, attachment_id: str, spool: Spool | None
) -> bytes | str | None:
    """An attachment from ``/v1/attachments/{id}``: the spool file's path (streamed there), or
    its bytes without a spool; None when it could not be fetched."""
    url = f"{base_url}/v1/attachments/{attachment_id}"
    try:
        if spool is not None:
            path = spool.new_path()
            await stream_to_file(session, url, path, limits.SIGNAL.size)
            return str(path)
        async with session.get(url) as resp:
            resp.raise_for_status()
            return await resp.read()
    except (aiohttp.ClientError, TimeoutError, DownloadFailed) as e:
        log.warning("Signal: could not download attachment %s: %s", attachment_id, e)
        return None


async def delete_attachment(session: aiohttp.ClientSession, base_url: str, attachment_id: str) -> None:
    """Remove an attachment from signal-cli-rest-api; a failure is logged, never raised."""
    try:
        async with session.delete(f"{base_url}/v1/attachments/{attachment_id}") as resp:
            if resp.status >= 400:
                log.info("Signal: attachment %s was not deleted (%s)", attachment_id, resp.status)
    except (aiohttp.ClientError, TimeoutError) as e:
        log.warning("Signal: could not delete attachment %s: %s", attachment_id, e)
