"""The Bot API transport (bots/telegram/http.py): proxies from the environment, and a typed
"certainly not sent" for requests that never reached the server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bots.telegram.http import AiohttpRequest, RequestNotSent
from tests.fakes.telegram_server import TOKEN, FakeTelegram

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


class ForwardProxy:
    """A plain HTTP forward proxy on loopback: relays absolute-form requests and records them."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _relay(self, request: web.Request) -> web.Response:
        self.seen.append(str(request.url))
        body = await request.read()
        async with aiohttp.ClientSession() as session, session.request(
            request.method, str(request.url), data=body, headers={"Content-Type": request.content_type}
        ) as answer:
            return web.Response(status=answer.status, body=await answer.read(), content_type="application/json")

    async def __aenter__(self) -> ForwardProxy:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._relay)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
async def transport(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[AiohttpRequest]:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    request = AiohttpRequest(2)
    await request.initialize()
    yield request
    await request.shutdown()


async def test_all_proxy_carries_the_bot_api_requests(
    transport: AiohttpRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FakeTelegram() as telegram, ForwardProxy() as proxy:
        monkeypatch.setenv("ALL_PROXY", proxy.url)
        status, body = await transport.do_request(f"{telegram.root}/bot{TOKEN}/getMe", "POST")
        assert status == 200 and json.loads(body)["result"]["username"] == "test_bot"
        assert proxy.seen == [f"{telegram.root}/bot{TOKEN}/getMe"]

        monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # as httpx: NO_PROXY wins
        await transport.do_request(f"{telegram.root}/bot{TOKEN}/getMe", "POST")
        assert len(proxy.seen) == 2, "read once a session, as httpx reads it once a client"
        await transport.shutdown()
        await transport.initialize()
        await transport.do_request(f"{telegram.root}/bot{TOKEN}/getMe", "POST")
        assert len(proxy.seen) == 2


async def test_a_socks_proxy_is_refused_with_a_sentence(
    transport: AiohttpRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "socks5://127.0.0.1:1080")
    with pytest.raises(RuntimeError, match="not an HTTP proxy"):
        await transport.do_request(f"https://api.telegram.org/bot{TOKEN}/getMe", "POST")


async def test_a_request_that_never_connected_is_typed_not_sent(transport: AiohttpRequest) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RequestNotSent):
        await transport.do_request(f"http://127.0.0.1:{port}/bot{TOKEN}/sendMessage", "POST")
    assert not transport.reachable


class Relay:
    """A reverse proxy on a port chosen in advance, so a server can 'come up' on it later."""

    def __init__(self, port: int, target: str) -> None:
        self.port = port
        self.target = target
        self._runner: web.AppRunner | None = None

    async def _relay(self, request: web.Request) -> web.Response:
        async with aiohttp.ClientSession() as session, session.request(
            request.method, self.target + request.path_qs, data=await request.read(),
            headers={"Content-Type": request.headers.get("Content-Type", "application/json")},
        ) as answer:
            return web.Response(status=answer.status, body=await answer.read(), content_type="application/json")

    async def __aenter__(self) -> Relay:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._relay)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


async def test_ferry_telegram_without_network_says_so_once_and_retries(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": f"http://127.0.0.1:{port}",
        "OPENAI_API_KEY": "test",
        "FERRY_DATA_DIR": str(tmp_path),
        "FERRY_ACCESS": "open",
        "FERRY_LOG_LEVEL": "INFO",
    }
    for name in PROXY_VARIABLES:
        env.pop(name, None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots.cli", "telegram", env=env, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stderr is not None
    lines: list[str] = []

    async def read_until(predicate: Callable[[str], bool]) -> None:
        assert proc.stderr is not None
        while True:
            line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
            assert line, "the process ended: " + "".join(lines)
            lines.append(line)
            if predicate(line):
                return

    try:
        await read_until(lambda line: "cannot reach the Telegram Bot API" in line)
        async with FakeTelegram() as telegram, Relay(port, telegram.root):
            await read_until(lambda line: "ready now" in line)
            await telegram.wait_until(lambda: bool(telegram.calls_of("getUpdates")), within=30)
            assert proc.returncode is None  # still running, now polling
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 30)
    problems = [line for line in lines if "cannot reach" in line]
    assert len(problems) == 1, lines  # one clear line, not one per retry
    assert not any("Traceback" in line for line in lines), lines


async def test_slow_downloads_never_hold_the_connections_answers_are_sent_on(tmp_path: Path) -> None:
    """On one pool, as many slow downloads as it had connections made every send wait for one."""
    transport = AiohttpRequest(2, downloads=2)
    await transport.initialize()
    try:
        async with FakeTelegram() as telegram:
            telegram.file_rate = 100_000  # a 50 KB file takes half a second
            telegram.add_file(b"x" * 50_000, "voice/big.oga")
            url = f"{telegram.root}/file/bot{TOKEN}/voice/big.oga"
            downloads = [
                asyncio.ensure_future(transport.download(url, tmp_path / f"{i}.oga", 10**6)) for i in range(5)
            ]
            await telegram.wait_until(lambda: telegram.downloads_in_flight == 2, within=5)
            for _ in range(4):  # more sends than the pool has connections
                status, body = await transport.do_request(f"{telegram.root}/bot{TOKEN}/getMe", "POST")
                assert status == 200 and json.loads(body)["ok"]
            assert not any(d.done() for d in downloads)  # the sends went while every download was under way
            assert telegram.downloads_in_flight == 2  # at most ``downloads`` at once; the rest wait their turn
            await asyncio.gather(*downloads)
            assert all((tmp_path / f"{i}.oga").stat().st_size == 50_000 for i in range(5))
    finally:
        await transport.shutdown()
