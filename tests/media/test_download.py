"""A file streamed into the spool (bots/download.py): written whole, or not at all."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bots.download import CHUNK, DownloadFailed, stream_to_file
from tests.fakes.telegram_server import FakeTelegram

BIG = bytes(range(256)) * (40 * CHUNK // 256 + 100)  # written in many pieces


@pytest.fixture
async def server() -> AsyncIterator[str]:
    """The fake Bot API's file URL prefix, with ``big`` there (``missing`` is not)."""
    async with FakeTelegram() as tg:
        tg.add_file(BIG, "big")
        yield f"{tg.root}/file/bot{tg.token}"


async def test_a_file_is_written_whole(server: str, tmp_path: Path) -> None:
    path = tmp_path / "big"
    async with aiohttp.ClientSession() as session:
        size = await stream_to_file(session, f"{server}/big", path, len(BIG))
    assert size == len(BIG)
    assert path.read_bytes() == BIG


async def test_the_file_and_its_folder_entry_are_flushed_before_it_is_handed_on(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The intake record names the file; with a PostgreSQL store nothing else flushes the spool.
    flushed: list[tuple[int, int]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        flushed.append((st.st_dev, st.st_ino))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    path = tmp_path / "big"
    async with aiohttp.ClientSession() as session:
        await stream_to_file(session, f"{server}/big", path, len(BIG))
    inode = lambda p: (p.stat().st_dev, p.stat().st_ino)  # noqa: E731
    assert inode(path) in flushed and inode(tmp_path) in flushed


async def test_a_file_over_its_limit_leaves_nothing(server: str, tmp_path: Path) -> None:
    path = tmp_path / "big"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(DownloadFailed, match="larger than"):
            await stream_to_file(session, f"{server}/big", path, len(BIG) - 1)
        with pytest.raises(DownloadFailed, match="404"):
            await stream_to_file(session, f"{server}/missing", tmp_path / "missing", 100)
    assert os.listdir(tmp_path) == []
