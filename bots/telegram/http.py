"""python-telegram-bot's transport on aiohttp instead of httpx.

PTB puts the network behind one injectable request object; this is one. Under load the bot
spent over a third of its CPU in httpx/httpcore/anyio (the pool scans every connection for
each request, anyio wraps every socket call); aiohttp's client does the same work with a C
HTTP parser and a FIFO connection limit. Errors map onto PTB's own: a timeout is ``TimedOut``,
anything else ``NetworkError``; when no connection was made (refused, unreachable, or the
connect phase timed out) it is :class:`RequestNotSent`, so a caller knows by its type that a
new message was certainly not delivered and may be sent again.

Received files are downloaded on a session of their own, at most ``downloads`` at a time: on the
shared pool, as many slow downloads as it had connections (a group's burst of voice notes, each up
to 20 MB) held every connection, and every answer's send and draft waited for one of them to end.
Downloads beyond the limit wait for a turn, not for a connection, so the wait is not counted
against their connect timeout.

Proxies are taken from the environment as python-telegram-bot's own transport (httpx) takes
them: ``HTTPS_PROXY`` / ``HTTP_PROXY`` by the URL's scheme, else ``ALL_PROXY``, with
``NO_PROXY`` honoured. aiohttp speaks HTTP proxies only; a SOCKS proxy is refused at start
with a sentence saying so, instead of being silently bypassed.
"""

from __future__ import annotations

import asyncio
import functools
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

from bots.download import stream_to_file

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
DOWNLOADS = 4
"""Files downloaded at the same time (each on a connection of the download session)."""


class RequestNotSent(NetworkError):
    """The request never reached the Bot API server: sending it again cannot duplicate it."""


def proxy_for(scheme: str, host: str) -> str | None:
    """The proxy the environment names for ``scheme://host`` (None: connect directly), as httpx reads it."""
    if host and urllib.request.proxy_bypass(host):
        return None
    proxies = urllib.request.getproxies_environment()
    return proxies.get(scheme) or proxies.get("all") or None


class AiohttpRequest(BaseRequest):
    """A PTB request object on one aiohttp session with at most ``connections`` connections."""

    def __init__(
        self,
        connections: int = 16,
        *,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 30.0,
        media_write_timeout: float | None = 20.0,
        downloads: int = DOWNLOADS,
    ) -> None:
        self._connections = connections
        self._default: dict[str, float | None] = {
            "read": read_timeout, "write": write_timeout, "connect": connect_timeout,
            "pool": pool_timeout, "media_write": media_write_timeout,
        }
        self._session: aiohttp.ClientSession | None = None
        self._downloads = downloads
        self._download_session: aiohttp.ClientSession | None = None  # made at the first download
        self._download_turns = asyncio.Semaphore(downloads)
        self._proxies: dict[tuple[str, str], str | None] = {}  # (scheme, host) -> proxy, see _proxy
        self._answered_at = 0.0  # when the Bot API server last answered (any status)
        self._failed_at = 0.0  # when a request last failed to reach it

    @property
    def reachable(self) -> bool:
        """Whether the last exchange reached the Bot API server (False before the first one)."""
        return self._answered_at > 0 and self._answered_at >= self._failed_at

    @property
    def read_timeout(self) -> float | None:
        return self._default["read"]

    def _timeout(self, name: str, given: Any) -> float | None:
        return self._default[name] if given is BaseRequest.DEFAULT_NONE else given

    async def initialize(self) -> None:
        self._proxies.clear()  # a new session reads the environment again
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections),
                headers={"User-Agent": self.USER_AGENT},
            )

    def _proxy(self, url: str) -> str | None:
        """The proxy for ``url``'s server, read from the environment at the session's first request
        to it, as httpx reads it once when a client is made. (Read on every request, the eight
        variables cost a percent of the bot's CPU under load.)"""
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "")
        try:
            return self._proxies[key]
        except KeyError:
            proxy = self._proxies[key] = proxy_for(*key)
            return proxy

    async def shutdown(self) -> None:
        for session in (self._session, self._download_session):
            if session is not None and not session.closed:
                await session.close()
        self._session = self._download_session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        files = request_data.multipart_data if request_data else None
        data: Any = None
        headers = None
        if request_data is not None:
            if files:
                form = aiohttp.FormData()
                for name, value in request_data.json_parameters.items():
                    form.add_field(name, value)
                for name, (filename, content, mime_type) in files.items():
                    form.add_field(name, content, filename=filename, content_type=mime_type)
                data = form
            elif parameters := request_data.json_parameters:
                # Encoded here: aiohttp's FormData for a plain form builds a multipart writer
                # (with a uuid4 boundary) it never uses, a tenth of this call's CPU.
                data, headers = urlencode(parameters).encode(), FORM
        read = self._timeout("read", read_timeout)
        connect = self._timeout("connect", connect_timeout)
        pool = self._timeout("pool", pool_timeout)
        write = self._timeout("write", write_timeout)
        if files and write_timeout is BaseRequest.DEFAULT_NONE:
            write = self._default["media_write"]
        limits = _limits(connect, pool, read, write)
        proxy = self._proxy(url)
        if proxy is not None and not proxy.lower().startswith(("http://", "https://")):
            raise RuntimeError(
                f"the proxy {proxy} (from HTTPS_PROXY / ALL_PROXY) is not an HTTP proxy; Ferry's Bot API "
                "transport speaks HTTP proxies only: set an http:// proxy, or unset it"
            )
        try:
            answer = await self._send(method, url, data, headers, limits, proxy)
        except (NetworkError, TimedOut):
            self._failed_at = time.monotonic()
            raise
        self._answered_at = time.monotonic()
        return answer

    async def download(self, url: str, path: Path, limit: int) -> None:
        """Stream a file from the Bot API server into ``path`` (:func:`bots.download.stream_to_file`)."""
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        if self._download_session is None or self._download_session.closed:
            self._download_session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._downloads),
                headers={"User-Agent": self.USER_AGENT},
            )
        async with self._download_turns:
            await stream_to_file(self._download_session, url, path, limit, proxy=self._proxy(url))

    async def _send(
        self,
        method: str,
        url: str,
        data: Any,
        headers: dict[str, str] | None,
        limits: aiohttp.ClientTimeout,
        proxy: str | None,
    ) -> tuple[int, bytes]:
        assert self._session is not None
        try:
            async with self._session.request(
                method, url, data=data, headers=headers, timeout=limits, proxy=proxy
            ) as response:
                return response.status, await response.read()
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as err:
            raise RequestNotSent(f"aiohttp.ConnectError: {err}") from err
        except TimeoutError as err:
            raise TimedOut from err
        except aiohttp.ClientError as err:
            raise NetworkError(f"aiohttp.{err.__class__.__name__}: {err}") from err


@functools.lru_cache(maxsize=32)
def _limits(
    connect: float | None, pool: float | None, read: float | None, write: float | None
) -> aiohttp.ClientTimeout:
    """aiohttp's timeouts for PTB's four (a handful of combinations, each made once)."""
    return aiohttp.ClientTimeout(
        total=None,
        connect=_add(connect, pool),  # waiting for a free connection, then connecting
        sock_connect=connect,
        sock_read=_add(read, write),  # aiohttp has no write timeout: the read one covers both
    )


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b
