"""A small reverse proxy on 127.0.0.1 that spreads requests over replicas in turn (round robin).

It stands for the one entry (Caddy, nginx) in front of several ``ferry telegram`` replicas: each
request goes to the next replica; one whose port refuses the connection is skipped for the next
(as Caddy's ``lb_try_duration`` retries a request that could not reach an upstream, and nginx's
``proxy_next_upstream error`` does — neither re-sends a request that reached a replica), and when
none can be reached the answer is 502, so Telegram delivers the update again later. The status,
and nothing else, comes back to the caller (a webhook answer carries nothing more).
"""

from __future__ import annotations

import itertools

from aiohttp import ClientConnectorError, ClientError, ClientSession, ClientTimeout, web

HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding", "keep-alive"}


class RoundRobin:
    """``await start()``; ``url`` is the entry; ``backends`` the replicas' base URLs (changeable)."""

    def __init__(self, backends: list[str], timeout: float = 60.0) -> None:
        self.backends = list(backends)
        self.timeout = timeout
        self.forwarded: list[str] = []  # the backend of each request that reached one
        self._turn = itertools.count()
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The entry's root URL."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on 127.0.0.1 on a free port."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])
        self._session = ClientSession(timeout=ClientTimeout(total=self.timeout))

    async def stop(self) -> None:
        """Stop listening."""
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        for _ in range(len(self.backends)):
            backend = self.backends[next(self._turn) % len(self.backends)]
            try:
                async with self._session.request(
                    request.method, backend.rstrip("/") + request.path_qs, data=body, headers=headers
                ) as resp:
                    await resp.read()
                    self.forwarded.append(backend)
                    return web.Response(status=resp.status)
            except ClientConnectorError:
                continue  # never reached this replica: the next one may take it
            except (ClientError, TimeoutError):
                return web.Response(status=502)  # it may have been taken: Telegram decides to send again
        return web.Response(status=502)
