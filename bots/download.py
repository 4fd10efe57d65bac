"""Files streamed from a messenger's server into the spool (:mod:`core.media.spool`), never whole in memory.

Both adapters fetch attachments this way: the Telegram Bot API's ``/file/bot<token>/<path>`` and
signal-cli-rest-api's ``/v1/attachments/{id}``. The file is written whole before it is handed on,
since the intake record names it, and made durable (the file and its folder entry flushed) before
it is: a record that outlives a power cut names a file that did too, whichever store keeps the
record (the TinyDB store's ``syncfs`` would cover the spool, a PostgreSQL store's commit does not).
The flushes run in a worker thread and come after the "thinking" draft, which goes out at receipt.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp

CHUNK = 1 << 16
"""Bytes read at a time."""


def _durable(fd: int, folder: Path) -> None:
    """Flush a written file and the folder holding its name."""
    os.fsync(fd)
    entry = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(entry)
    finally:
        os.close(entry)


class DownloadFailed(Exception):
    """The file could not be fetched whole (the partial file is removed)."""


async def stream_to_file(
    session: aiohttp.ClientSession,
    url: str,
    path: Path,
    limit: int,
    *,
    proxy: str | None = None,
    read_timeout: float = 30.0,
) -> int:
    """GET ``url`` into ``path`` chunk by chunk; at most ``limit`` bytes (a server sending more
    than it announced is cut off). Returns the size; raises :class:`DownloadFailed`."""
    timeouts = aiohttp.ClientTimeout(total=None, connect=30.0, sock_read=read_timeout)
    try:
        async with session.get(url, timeout=timeouts, proxy=proxy) as response:
            if response.status >= 400:
                raise DownloadFailed(f"answered {response.status}")
            written = 0
            with path.open("wb") as out:
                async for chunk in response.content.iter_chunked(CHUNK):
                    written += len(chunk)
                    if written > limit:
                        raise DownloadFailed(f"larger than {limit} bytes")
                    out.write(chunk)
                out.flush()
                await asyncio.to_thread(_durable, out.fileno(), path.parent)
            return written
    except BaseException as err:
        path.unlink(missing_ok=True)  # noqa: ASYNC240 (one unlink, on failure)
        if isinstance(err, TimeoutError | aiohttp.ClientError | OSError):
            raise DownloadFailed(f"{type(err).__name__}: {err}") from err
        raise
