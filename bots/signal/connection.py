"""The receive WebSocket to signal-cli-rest-api, kept attached with as short gaps as possible.

signal-cli-rest-api in json-rpc mode hands each incoming message to the WebSockets attached at
that moment and drops it when none is (bbernhard/signal-cli-rest-api#834, open): every second
without a connection is lost mail. So, unlike signalbot's own stream (which ends silently when
the server closes the socket):

* a dropped connection is made again at once, then after 0.1 s doubling to at most
  :data:`RECONNECT_CAP` (about a second); the delays start over when a connection is made and
  has held for a moment (not when the first frame arrives, which on a quiet bot may take hours);
* keepalive pings every :data:`PING_INTERVAL` seconds find a connection that died silently
  (a NAT or proxy dropping it) within seconds instead of at the next send;
* a frame with a lone UTF-16 surrogate escape (which signalbot's pydantic parser refuses, so
  the message would be skipped) has it replaced by U+FFFD; a malformed frame is skipped with
  one log line naming the field and the problem, never the frame's content;
* after each (re)connection, what arrived while none was attached is fetched again when
  signal-cli-rest-api's persistence plugin records it (``backlog``, see
  :mod:`bots.signal.backlog`);
* when receiving has been down for :data:`DOWN_ALERT_AFTER` seconds, ``on_down`` is called once
  (the adapter alerts the admins) and ``on_up`` when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field

import websockets
from pydantic import ValidationError

from bots.intake import cleaned
from bots.logs import Throttled
from bots.signal.seams import ReceivedFrame

log = logging.getLogger(__name__)

RECONNECT_FIRST = 0.1
RECONNECT_CAP = 1.0
PING_INTERVAL = 10.0
HELD = 1.0
"""Seconds a new connection must last before the reconnect delays start over."""
DOWN_ALERT_AFTER = 60.0

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


@dataclass(eq=False)
class ReceiveLink:
    """An endless stream of usable frames from ``ws_url``, reconnecting as described above."""

    ws_url: str
    _: KW_ONLY
    first: float = RECONNECT_FIRST
    cap: float = RECONNECT_CAP
    ping_interval: float = PING_INTERVAL
    down_alert_after: float = DOWN_ALERT_AFTER
    on_down: Callable[[float], Awaitable[None]] | None = None
    on_up: Callable[[float], Awaitable[None]] | None = None
    backlog: Callable[[float | None], Awaitable[list[str]]] | None = None
    connected_since: float = field(default=0.0, init=False)
    """When the current connection was made (0 while there is none)."""
    down_since: float = field(default=0.0, init=False)
    """When receiving last stopped (0 while connected or before the first connection)."""
    # The wall-clock start of the gap to recover (None: this run's first).
    _gap_since: float | None = field(default=None, init=False, repr=False)
    _alerted: bool = field(default=False, init=False, repr=False)
    _throttled: Throttled = field(default_factory=lambda: Throttled(log, interval=30.0), init=False, repr=False)
    _watch: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _up: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)

    @property
    def up(self) -> bool:
        """Whether a receive WebSocket is attached now."""
        return self.connected_since > 0

    async def wait_up(self) -> None:
        """Return once a receive WebSocket is attached."""
        await self._up.wait()

    async def frames(self) -> AsyncIterator[str]:
        """Usable frames, for ever (the caller cancels)."""
        delay = 0.0
        try:
            while True:
                try:
                    async with websockets.connect(
                        self.ws_url, ping_interval=self.ping_interval, ping_timeout=self.ping_interval,
                        open_timeout=max(self.cap, 5.0), max_size=None,
                    ) as ws:  # fmt: skip
                        await self._connected()
                        if self.backlog is not None:
                            # What arrived while no WebSocket was attached: each message again; the
                            # core answers a message it has recorded before only once (its key).
                            for old in await self.backlog(self._gap_since):
                                frame = usable_frame(old)
                                if frame is not None:
                                    yield frame
                        async for raw in ws:
                            frame = usable_frame(raw if isinstance(raw, str) else raw.decode("utf-8", "replace"))
                            if frame is not None:
                                yield frame
                    reason = "was closed by signal-cli-rest-api"
                except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                    reason = f"failed ({type(exc).__name__})"
                connected = self.up
                held = connected and time.monotonic() - self.connected_since >= HELD
                self._disconnected()
                # At once after a connection that held; soon after one that did not (a server
                # accepting and closing at once is not hammered); growing to ``cap`` while
                # connecting fails.
                delay = 0.0 if held else self.first if connected else min(self.cap, max(self.first, delay * 2))
                self._throttled(
                    logging.WARNING, "drop", "Signal: the receive WebSocket %s; reconnecting in %.1fs", reason, delay
                )
                await asyncio.sleep(delay)
        finally:
            if self._watch is not None:
                self._watch.cancel()

    async def _connected(self) -> None:
        was_down = self.down_since
        self.connected_since = time.monotonic()
        self.down_since = 0.0
        self._up.set()
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self._alerted:
            self._alerted = False
            log.warning("Signal: receiving again after %.0f s", self.connected_since - was_down)
            if self.on_up is not None:
                await _quietly(self.on_up(self.connected_since - was_down))

    def _disconnected(self) -> None:
        self.connected_since = 0.0
        self._up.clear()
        if not self.down_since:
            self.down_since = time.monotonic()
            self._gap_since = time.time()
            if self._watch is None and self.on_down is not None:
                self._watch = asyncio.get_running_loop().create_task(self._alert_when_long())

    async def _alert_when_long(self) -> None:
        await asyncio.sleep(self.down_alert_after)
        if self.down_since and self.on_down is not None:
            self._alerted = True
            log.error("Signal: no receive WebSocket for %.0f s: messages sent now are lost", self.down_alert_after)
            await _quietly(self.on_down(time.monotonic() - self.down_since))


async def _quietly(work: Awaitable[None]) -> None:
    try:
        await work
    except Exception as exc:
        log.warning("Signal: could not tell the admins (%s)", type(exc).__name__)


def usable_frame(raw: str) -> str | None:
    """The frame to hand to signalbot (lone surrogates replaced), or None to skip it."""
    if _SURROGATE_ESCAPE.search(raw):
        with contextlib.suppress(ValueError):
            raw = json.dumps(cleaned(json.loads(raw)))
    try:
        frame = ReceivedFrame.model_validate_json(raw)
    except ValidationError as e:
        error = _error_frame(raw)
        if error is not None:
            log.warning("Signal: signal-cli-rest-api reported an error: %.200s", error)
        else:
            errors = e.errors()
            where = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
            what = errors[0]["type"] if errors else type(e).__name__
            # The field and the kind of problem only: the frame holds the person's text.
            log.warning("Signal: skipped a malformed message frame (%s: %s)", where or "frame", what)
        return None
    # A sync message was sent by the bot's own account from another device: not one to
    # answer (signalbot would present it as coming from the person it was sent to).
    return raw if frame.envelope.sync_message is None else None


def _error_frame(raw: str) -> str | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if isinstance(data, dict) and set(data) == {"error"}:
        return str(data["error"])
    return None
