"""The bot processes as an operator starts them: real ``ferry`` processes, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.signal_server import ALICE_NUMBER, ALICE_UUID, BOT_NUMBER, FakeSignalServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def ferry_process(
    *args: str, python: str = sys.executable, **env: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        python, "-m", "bots.cli", *args,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def health(port: int) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as r:
        return r.status, await r.json()


async def wait_healthy(port: int, proc: asyncio.subprocess.Process, within: float = 30) -> dict[str, object]:
    deadline = asyncio.get_running_loop().time() + within
    last: dict[str, object] = {}
    while asyncio.get_running_loop().time() < deadline:
        if proc.returncode is not None:
            err = await proc.stderr.read() if proc.stderr else b""
            raise AssertionError(f"the process ended with {proc.returncode}: {err.decode()[-2000:]}")
        with contextlib.suppress(aiohttp.ClientError):
            status, last = await health(port)
            if status == 200:
                return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"never healthy: {last}")


async def test_ferry_signal_is_healthy_once_connected_and_answers(
    openai_server: FakeOpenAI, tmp_path: Path
) -> None:
    port = free_port()
    async with FakeSignalServer() as fake:
        fake.mode = "normal"  # a misconfigured signal-cli: the process must say so and wait
        async with ferry_process(
            "signal",
            SIGNAL_SERVICE=fake.service, SIGNAL_PHONE_NUMBER=BOT_NUMBER,
            OPENAI_BASE_URL=openai_server.base_url, OPENAI_API_KEY="sk-test",
            FERRY_DATA_DIR=str(tmp_path), FERRY_ACCESS="open", FERRY_HEALTH_PORT=str(port),
        ) as proc:
            for _ in range(100):
                with contextlib.suppress(aiohttp.ClientError):
                    status, body = await health(port)
                    break
                await asyncio.sleep(0.1)
            assert status == 503
            assert body["checks"] == {"Signal": "not connected to Signal", "store": "ok"}
            fake.mode = "json-rpc"
            await wait_healthy(port, proc)
            await fake.push_message(ALICE_UUID, ALICE_NUMBER, "hello from Signal")
            await fake.wait_for(lambda: any("You said: hello from Signal" in str(s) for s in fake.sent))
            counted = 'ferry_messages_total{outcome="ok",platform="signal"} 1.0'
            for _ in range(50):  # the count is taken just after the answer is sent
                async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as r:
                    metrics = await r.text()
                if counted in metrics:
                    break
                await asyncio.sleep(0.1)
            assert counted in metrics
        assert proc.returncode == 0
        assert proc.stderr is not None
        log = (await proc.stderr.read()).decode()
        assert "MODE=json-rpc" in log
        assert "hello from Signal" not in log  # no message text in the log at INFO


async def test_ferry_telegram_is_healthy_and_counts_flood_control(openai_server: FakeOpenAI, tmp_path: Path) -> None:
    from tests.fakes.telegram_server import TOKEN, FakeTelegram

    port = free_port()
    async with FakeTelegram() as tg:
        async with ferry_process(
            "telegram",
            TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_URL=tg.root,
            OPENAI_BASE_URL=openai_server.base_url, OPENAI_API_KEY="sk-test",
            FERRY_DATA_DIR=str(tmp_path), FERRY_ACCESS="open", FERRY_HEALTH_PORT=str(port),
        ) as proc:
            body = await wait_healthy(port, proc)
            assert body["checks"] == {"Telegram": "ok", "store": "ok"}
            tg.flood("sendMessage", times=1, retry_after=1)
            tg.push_text(42, "hello from Telegram")
            await tg.wait_until(lambda: len(tg.log(42).messages) == 1, within=20)
            assert tg.log(42).messages[0].text == "You said: hello from Telegram"
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as r:
                metrics = await r.text()
            assert 'ferry_flood_control_waits_total{platform="telegram"} 1.0' in metrics
        assert proc.returncode == 0
        assert proc.stderr is not None
        log = (await proc.stderr.read()).decode()
        assert "hello from Telegram" not in log and TOKEN not in log  # no message text or secret in the log
