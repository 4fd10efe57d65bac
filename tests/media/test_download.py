"""A file streamed into the spool (bots/download.py): written whole, or not at all."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bots.download import CHUNK, DownloadFailed, stream_to_file

BIG = bytes(range(256)) * (40 * CHUNK // 256 + 100)  # written in many pieces


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for start in range(0, len(BIG), 50_000):
            await response.write(BIG[start : start + 50_000])
        return response

    async def missing(request: web.Request) -> web.Response:
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/big", big)
    app.router.add_get("/missing", missing)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_file_is_written_whole(server: str, tmp_path: Path) -> None:
    path = tmp_path / "big"
    async with aiohttp.ClientSession() as session:
        size = await stream_to_file(session, f"{server}/big", path, len(BIG))
    assert size == len(BIG)
    assert path.read_bytes() == BIG


async def test_a_file_over_its_limit_leaves_nothing(server: str, tmp_path: Path) -> None:
    path = tmp_path / "big"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(DownloadFailed, match="larger than"):
            await stream_to_file(session, f"{server}/big", path, len(BIG) - 1)
        with pytest.raises(DownloadFailed, match="404"):
            await stream_to_file(session, f"{server}/missing", tmp_path / "missing", 100)
    assert os.listdir(tmp_path) == []
