"""/healthz while PostgreSQL goes away and comes back (a TCP proxy in front of the real server)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bots.health import serve_health
from core.store.postgres import PostgresStore
from tests.conftest import MakeAssistant, make_settings
from tests.store.pg import pg_schema

PG_HOST, PG_PORT = "127.0.0.1", 5432


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proxy:
    """Forwards 127.0.0.1:<port> to the PostgreSQL server; ``down()`` drops every connection, as a
    server restart or a network cut does, and refuses new ones until ``up()``."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def down(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for w in list(self._writers):
            w.close()
        self._writers.clear()
        if server is not None:
            # Since Python 3.12.1 this waits for the server's connections too: closed above first.
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(PG_HOST, PG_PORT)
        self._writers |= {writer, up_writer}

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                w.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    p = Proxy()
    await p.up()
    yield p
    await p.down()


async def ready(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, str]]:
    async with http.get(url) as r:
        return r.status, (await r.json())["checks"]


async def test_healthz_is_not_ready_while_postgres_is_unreachable_and_ready_again_after(
    make_assistant: MakeAssistant, proxy: Proxy
) -> None:
    port = free_port()
    with pg_schema() as schema:
        store = PostgresStore(f"postgresql://postgres@127.0.0.1:{proxy.port}/test?schema={schema}", timeout=2.0)
        assistant = await make_assistant(store=store)
        settings = make_settings(FERRY_HEALTH_PORT=str(port))
        async with serve_health(settings, assistant, "telegram", lambda: True), aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}/healthz"
            assert (await ready(http, url))[0] == 200

            await proxy.down()
            for _ in range(3):  # an outage of a few seconds: not ready all along, the process keeps running
                status, checks = await ready(http, url)
                assert status == 503 and checks["store"] != "ok" and checks["telegram"] == "ok"
                await asyncio.sleep(1)

            await proxy.up()
            # The pool reconnects on its own, with back-off: ready again within one back-off step.
            recovered = False
            deadline = time.monotonic() + 40
            while not recovered and time.monotonic() < deadline:
                recovered = (await ready(http, url))[0] == 200
                await asyncio.sleep(0 if recovered else 0.5)
            assert recovered
            await store.set_meta("after", "the outage")
            assert await store.get_meta("after") == "the outage"
        await store.close()
