"""A fake signal-cli-rest-api (json-rpc mode) for driving the real signalbot over HTTP and WebSocket.

It follows the wire details recorded in ``shared/research/protocols.md`` §2 and listens on
127.0.0.1 on an ephemeral port:

* ``GET /v1/health`` 204; ``GET /v1/about`` with all five keys signalbot requires (mode
  ``json-rpc``, version ``0.101``); ``GET /v1/accounts`` (the registered numbers);
  ``GET /v1/groups/{number}`` and ``/v1/groups/{number}/{id}``.
* ``WS /v1/receive/{number}`` pushing ``{"account": …, "envelope": …}`` text frames with every
  field signalbot's models require. Every attached socket gets each frame; a frame that arrives
  while no socket is attached is DROPPED, as upstream does (see :meth:`FakeSignalServer.push_raw`).
* ``POST /v2/send``: the JSON body arrives as ``text/plain``; it is parsed anyway, validated like
  the real server (recipients and number required) and answered ``201 [{"timestamp": "…"}]``
  (a JSON list, as signal-cli-rest-api ≥ 0.101 does).
* typing indicator ``PUT``/``DELETE``, reactions, receipts, remote delete, attachments.

Test API::

    async with FakeSignalServer() as fake:
        adapter = SignalAdapter(assistant, service=fake.service, phone_number=fake.number)
        await fake.push_message(ALICE_UUID, ALICE_NUMBER, "hello")
        await fake.wait_for_sent(1)
        fake.sent[-1]["message"]; fake.sent_timestamps[-1]
        fake.typing            # [("start", recipient), ("stop", recipient), ...]
        fake.reactions         # reaction request bodies
        await fake.drop_websockets()                                  # the client must reconnect
        await fake.restart(down_for=0.5)                              # the service restarts
        fake.dropped; fake.attach_log                                 # what was lost, and when
        fake.seen(ALICE_NUMBER)                                       # what the person sees now
        await fake.push_raw('{"account": "+49…", "envelope": {}}')   # a malformed frame
        fake.mode = "normal"; fake.registered = False                 # start-up failures
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import WSCloseCode, web

BOT_NUMBER = "+4915112345678"
BOT_UUID = "0f0e8c1d-1111-2222-3333-444455556666"
ALICE_NUMBER = "+4915187654321"
ALICE_UUID = "c557ef2c-964b-40ef-bbbd-d3988ebcae87"
BOB_NUMBER = "+12025550123"
BOB_UUID = "7b3a51d2-5e0f-4c8e-9a61-0c1f2d3e4f50"

OBJECT_REPLACEMENT = "\ufffc"
"""What a mention looks like inside ``message``."""


@dataclass(frozen=True)
class FakeGroup:
    """A group the bot is a member of."""

    name: str
    internal_id: str
    members: tuple[str, ...]

    @property
    def id(self) -> str:
        # signal-cli-rest-api's convertInternalGroupIdToGroupId.
        return "group." + base64.b64encode(self.internal_id.encode()).decode()

    def entry(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": "",
            "id": self.id,
            "internal_id": self.internal_id,
            "members": list(self.members),
            "blocked": False,
            "member": True,
            "pending_invites": [],
            "pending_requests": [],
            "invite_link": "",
            "admins": [],
            "permissions": {
                "add_members": "only-admins",
                "edit_group": "only-admins",
                "send_messages": "every-member",
            },
        }


def _utf16(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


_ESCAPABLE = "*`|~"
_BOLD_ITALIC = "BOLD_ITALIC"


def parse_styled(message: str) -> tuple[str, list[str]]:
    """What signal-cli-rest-api makes of a ``text_mode: styled`` message: the text and its ranges.

    A line-by-line port of upstream's ``TextstyleParser.Parse`` (bbernhard/signal-cli-rest-api,
    src/utils/textstyleparser.go at a08db23; escapes since a70c299, fixed in d6488d6 / 0.96):
    ``*italic*``, ``**bold**``, ``***bold italic***``, ``~strike~``, `` `mono` ``, ``||spoiler||``.
    Markers go on a stack: a marker equal to the top one closes it, any other opens a new one,
    so properly nested styles work and crossing ones are lost (their markers still vanish).
    Asterisks are read greedily (``***`` is one token). A backslash before ``*``, `` ` ``,
    ``|`` or ``~`` is dropped and makes the following marker (the whole ``**`` or ``||``)
    literal; a backslash before anything else stays. Ranges count UTF-16 units.
    """
    out: list[str] = []
    styles: list[str] = []
    stack: list[tuple[int, str]] = []
    units = 0
    prev = ""
    i = 0

    def token(kind: str) -> None:
        if stack and stack[-1][1] == kind:
            begin, _ = stack.pop()
            for style in ("BOLD", "ITALIC") if kind == _BOLD_ITALIC else (kind,):
                styles.append(f"{begin}:{units - begin}:{style}")
        else:
            stack.append((units, kind))

    def literal(text: str) -> None:
        nonlocal units
        out.append(text)
        units += sum(_utf16(ch) for ch in text)

    while i < len(message):
        c = message[i]
        nxt = message[i + 1] if i + 1 < len(message) else ""
        i += 1
        if c == "*":
            run = "*"
            if nxt == "*":
                run, i = "**", i + 1
                if message[i : i + 1] == "*":
                    run, i = "***", i + 1
            if prev == "\\":
                literal(run)
            else:
                token({"*": "ITALIC", "**": "BOLD", "***": _BOLD_ITALIC}[run])
        elif c == "|" and nxt == "|":
            i += 1
            literal("||") if prev == "\\" else token("SPOILER")
        elif c in "~`":
            literal(c) if prev == "\\" else token("STRIKETHROUGH" if c == "~" else "MONOSPACE")
        elif c == "\\" and nxt and nxt in _ESCAPABLE:
            prev = c
            continue
        else:
            literal(c)
        prev = c
    return "".join(out), styles


def as_delivered(body: dict[str, Any]) -> dict[str, Any]:
    """The send request as the person receives it: styled markup parsed, unknown fields dropped."""
    delivered = {k: v for k, v in body.items() if k in SEND_FIELDS}
    if body.get("text_mode") == "styled":
        text, styles = parse_styled(str(body.get("message", "")))
        delivered.update(message=text, markup=body.get("message"))
        if styles:
            delivered["text_style"] = styles
    return delivered


# The fields of signal-cli-rest-api's SendMessageV2; the Go server ignores any other.
SEND_FIELDS = frozenset(
    {
        "base64_attachments", "edit_timestamp", "link_preview", "mentions", "message", "notify_self", "number",
        "quote_author", "quote_mentions", "quote_message", "quote_timestamp", "recipients", "sticker",
        "text_mode", "view_once",
    }
)


class FakeSignalServer:
    """An in-process signal-cli-rest-api on 127.0.0.1 with a recording, scriptable test API."""

    def __init__(
        self,
        number: str = BOT_NUMBER,
        *,
        bot_uuid: str = BOT_UUID,
        mode: str = "json-rpc",
        version: str = "0.101",
        registered: bool = True,
        record: bool = True,
    ) -> None:
        self.number = number
        self.bot_uuid = bot_uuid
        self.mode = mode
        """What ``/v1/about`` reports; signalbot only works with ``json-rpc``."""
        self.version = version
        self.registered = registered
        """Whether ``number`` is linked/registered (listed by ``/v1/accounts``, may send)."""
        self.record = record

        self.sent: list[dict[str, Any]] = []
        """Every accepted ``/v2/send`` body, in order (``edit_timestamp`` present on edits)."""
        self.sent_timestamps: list[int] = []
        """The timestamp the fake answered for each entry of :attr:`sent`."""
        self.typing: list[tuple[str, str]] = []
        """Typing-indicator calls as ``("start" | "stop", recipient)``."""
        self.reactions: list[dict[str, Any]] = []
        self.receipts: list[dict[str, Any]] = []
        self.remote_deletes: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        """Every request as ``(method, path)`` (only when ``record`` is set)."""
        self.content_types: list[str] = []
        """The Content-Type of each ``/v2/send`` request (signalbot sends text/plain)."""
        self.attachments: dict[str, tuple[bytes, str]] = {}
        self.attachment_downloads: list[str] = []
        self.groups: dict[str, FakeGroup] = {}
        self.ws_connections = 0
        """How many receive WebSockets were ever opened."""
        self.on_send: Callable[[dict[str, Any], int], None] | None = None
        """Called with each accepted ``/v2/send`` body and its timestamp (for benchmarks)."""
        self.on_typing: Callable[[str, str], None] | None = None
        """Called with ``("start" | "stop", recipient)`` for each typing-indicator call."""

        self.dropped: list[str] = []
        """Frames that arrived while no receive WebSocket was attached (lost, as upstream)."""
        self.attach_log: list[tuple[str, float]] = []
        """``("attach" | "detach" | "down" | "up", time.monotonic())`` for measuring loss windows."""
        self._outboxes: dict[web.WebSocketResponse, deque[str]] = {}
        self._frame_ready: dict[web.WebSocketResponse, asyncio.Event] = {}
        self._site: web.TCPSite | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self._changed = asyncio.Event()
        self._clock = itertools.count(int(time.time() * 1000))
        self._send_failures: deque[tuple[int, dict[str, Any]]] = deque()
        self._runner: web.AppRunner | None = None
        self._port = 0

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> FakeSignalServer:
        app = web.Application()
        r = app.router
        r.add_get("/v1/health", self._health)
        r.add_get("/v1/about", self._about)
        r.add_get("/v1/accounts", self._accounts)
        r.add_get("/v1/groups/{number}", self._groups)
        r.add_get("/v1/groups/{number}/{group_id}", self._group)
        r.add_get("/v1/receive/{number}", self._receive)
        r.add_post("/v2/send", self._send)
        r.add_put("/v1/typing-indicator/{number}", self._typing_start)
        r.add_delete("/v1/typing-indicator/{number}", self._typing_stop)
        r.add_post("/v1/reactions/{number}", self._react)
        r.add_delete("/v1/reactions/{number}", self._unreact)
        r.add_post("/v1/receipts/{number}", self._receipt)
        r.add_delete("/v1/remote-delete/{number}", self._remote_delete)
        r.add_get("/v1/attachments/{id}", self._attachment)
        r.add_delete("/v1/attachments/{id}", self._delete_attachment)
        r.add_put("/v1/contacts/{number}", self._no_content)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await self._listen()
        return self

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self._port, reuse_address=True)
        await self._site.start()
        self._port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=WSCloseCode.GOING_AWAY)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSignalServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        return self._port

    @property
    def service(self) -> str:
        """``host:port`` as signalbot's ``signal_service`` wants it (no scheme)."""
        return f"127.0.0.1:{self._port}"

    # --- scripting -----------------------------------------------------------------------

    def add_group(self, name: str, members: Sequence[str] = (ALICE_NUMBER, BOB_NUMBER)) -> FakeGroup:
        """Make the bot a member of a new group; returns it (``.id`` is ``group.…``)."""
        internal = base64.b64encode(os.urandom(32)).decode()
        group = FakeGroup(name, internal, (self.number, *members))
        self.groups[group.id] = group
        return group

    def add_attachment(self, data: bytes, content_type: str, attachment_id: str | None = None) -> str:
        """Store bytes to be served at ``/v1/attachments/{id}``; returns the id."""
        attachment_id = attachment_id or f"{base64.urlsafe_b64encode(os.urandom(9)).decode()}"
        self.attachments[attachment_id] = (data, content_type)
        return attachment_id

    def mention_of_bot(self, start: int = 0) -> dict[str, Any]:
        """A ``mentions[]`` entry naming the bot, for a U+FFFC placed at ``start``."""
        return {"name": self.number, "number": self.number, "uuid": self.bot_uuid, "start": start, "length": 1}

    def fail_next_send(self, status: int = 429, body: Mapping[str, Any] | None = None) -> None:
        """Answer the next ``/v2/send`` with an error (e.g. Signal's rate limit)."""
        self._send_failures.append((status, dict(body or {"error": "Rate limit exceeded"})))

    def next_timestamp(self) -> int:
        return next(self._clock)

    def envelope(
        self,
        source_uuid: str,
        source_number: str | None,
        text: str | None,
        *,
        group_id: str | None = None,
        quote: Mapping[str, Any] | None = None,
        mentions: Sequence[Mapping[str, Any]] | None = None,
        attachments: Sequence[Mapping[str, Any]] | None = None,
        source_name: str | None = None,
        timestamp: int | None = None,
    ) -> dict[str, Any]:
        """A complete receive frame for a data message, every required field present."""
        ts = timestamp or self.next_timestamp()
        data: dict[str, Any] = {
            "timestamp": ts,
            "message": text,
            "expiresInSeconds": 0,
            "viewOnce": False,
        }
        if mentions:
            data["mentions"] = [dict(m) for m in mentions]
        if quote is not None:
            q: dict[str, Any] = {
                "author": self.number,
                "authorNumber": self.number,
                "authorUuid": self.bot_uuid,
                "attachments": [],
            }
            q.update(quote)
            q.setdefault("id", ts - 1000)
            data["quote"] = q
        if attachments:
            data["attachments"] = [
                {
                    "contentType": "application/octet-stream",
                    "filename": None,
                    "size": None,
                    "width": None,
                    "height": None,
                    "caption": None,
                    "uploadTimestamp": ts - 100,
                    "isVoiceNote": False,
                    **a,
                }
                for a in attachments
            ]
        if group_id is not None:
            group = self.groups.get(group_id)
            internal = group.internal_id if group else group_id
            name = group.name if group else None
            data["groupInfo"] = {"groupId": internal, "groupName": name, "revision": 1, "type": "DELIVER"}
        return {
            "account": self.number,
            "envelope": {
                "source": source_number or source_uuid,
                "sourceNumber": source_number,
                "sourceUuid": source_uuid,
                "sourceName": source_name or "",
                "sourceDevice": 1,
                "timestamp": ts,
                "serverReceivedTimestamp": ts + 5,
                "serverDeliveredTimestamp": ts + 9,
                "dataMessage": data,
            },
        }

    async def push_message(
        self,
        source_uuid: str,
        source_number: str | None,
        text: str | None,
        group_id: str | None = None,
        quote: Mapping[str, Any] | None = None,
        mentions: Sequence[Mapping[str, Any]] | None = None,
        *,
        attachments: Sequence[Mapping[str, Any]] | None = None,
        source_name: str | None = None,
        timestamp: int | None = None,
    ) -> int:
        """Queue a data message on the receive WebSocket; returns its timestamp."""
        frame = self.envelope(
            source_uuid,
            source_number,
            text,
            group_id=group_id,
            quote=quote,
            mentions=mentions,
            attachments=attachments,
            source_name=source_name,
            timestamp=timestamp,
        )
        await self.push_raw(frame)
        return int(frame["envelope"]["timestamp"])

    async def push_raw(self, frame: str | Mapping[str, Any]) -> None:
        """Hand any frame (a dict is JSON-encoded) to every attached receive WebSocket, or drop it.

        Upstream in json-rpc mode, ``src/client/jsonrpc2.go`` ``ReceiveData`` (bbernhard/
        signal-cli-rest-api a08db23) copies each ``receive`` notification into the unbuffered channel
        of every attached WebSocket client with a non-blocking ``select { case c <- msg: … default: }``:
        with no client attached the message is dropped, and signal-cli has already taken it off
        Signal's servers, so it is gone (issue #834, open; #537 and #664: "messages are lost if no
        WebSocket client is connected"). The fake does the same; it only buffers per attached socket,
        so it never drops for a slow client, which upstream may.
        """
        text = frame if isinstance(frame, str) else json.dumps(frame)
        if not self._outboxes:
            self.dropped.append(text)
            self._changed.set()
            return
        for ws, outbox in self._outboxes.items():
            outbox.append(text)
            self._frame_ready[ws].set()

    @property
    def queued_frames(self) -> int:
        """Frames handed to an attached WebSocket but not yet written to it."""
        return sum(len(q) for q in self._outboxes.values())

    @property
    def connected(self) -> int:
        """How many receive WebSockets are open now."""
        return len(self._sockets)

    async def drop_websockets(self, code: int = WSCloseCode.GOING_AWAY) -> None:
        """Close every receive WebSocket, as a restarting signal-cli-rest-api does."""
        for ws in list(self._sockets):
            self._detach(ws)
            with contextlib.suppress(Exception):
                await ws.close(code=code, message=b"server restart")

    async def restart(self, down_for: float = 0.5) -> None:
        """Restart the service: sockets closed, connections refused for ``down_for`` s, then back.

        What arrives meanwhile is dropped: signal-cli takes it off Signal's servers at start and
        ``ReceiveData`` runs before the HTTP server accepts a WebSocket (see :meth:`push_raw`).
        """
        self.attach_log.append(("down", time.monotonic()))
        await self.drop_websockets()
        if self._site is not None:
            await self._site.stop()
        await asyncio.sleep(down_for)
        await self._listen()
        self.attach_log.append(("up", time.monotonic()))

    def _detach(self, ws: web.WebSocketResponse) -> None:
        # Once detached, nothing more is handed to this socket: later frames are dropped.
        if self._outboxes.pop(ws, None) is not None:
            self.attach_log.append(("detach", time.monotonic()))
        event = self._frame_ready.pop(ws, None)
        if event is not None:
            event.set()

    async def wait_for(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        """Wait until ``predicate()`` holds (re-checked whenever the fake records something)."""
        async with asyncio.timeout(within):
            while not predicate():
                self._changed.clear()
                # Re-check periodically too: some conditions change outside the fake.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.05):
                        await self._changed.wait()

    async def wait_for_sent(self, count: int, within: float = 10.0) -> None:
        await self.wait_for(lambda: len(self.sent) >= count, within)

    async def wait_connected(self, connections: int = 1, within: float = 10.0) -> None:
        """Wait until the receive WebSocket was opened ``connections`` times and is open."""
        await self.wait_for(lambda: self.ws_connections >= connections and self.connected > 0, within)

    def seen(self, recipient: str) -> list[str]:
        """The texts the person (or group) ``recipient`` sees now, in order, edits applied.

        A send with ``edit_timestamp`` replaces the text of the message sent at that timestamp
        (signal-cli-rest-api ≥ 0.82, issue #485), so a stub streamed by edits shows its last edit;
        an edit naming no message of this chat changes nothing on the phone; a remote delete
        removes the message.
        """
        shown: dict[int, str] = {}
        for body, ts in zip(self.sent, self.sent_timestamps, strict=True):
            if recipient not in body.get("recipients", ()):
                continue
            text = str(body.get("message") or "")
            edited = body.get("edit_timestamp")
            if edited is None:
                shown[ts] = text
            elif int(edited) in shown:
                shown[int(edited)] = text
        for delete in self.remote_deletes:
            if delete.get("recipient") == recipient:
                shown.pop(int(delete.get("timestamp", 0)), None)
        return list(shown.values())

    def clear(self) -> None:
        """Forget what was recorded (keeps memory flat in benchmarks)."""
        for log in (self.sent, self.sent_timestamps, self.typing, self.reactions, self.receipts):
            log.clear()
        self.requests.clear()
        self.content_types.clear()
        self.remote_deletes.clear()

    # --- handlers ------------------------------------------------------------------------

    def _note(self, request: web.Request) -> None:
        if self.record:
            self.requests.append((request.method, request.path))
        self._changed.set()

    def _wrong_number(self, request: web.Request) -> web.Response | None:
        number = request.match_info.get("number")
        if number is not None and number != self.number:
            return web.json_response({"error": f"User {number} is not registered."}, status=400)
        if not self.registered:
            return web.json_response({"error": f"User {self.number} is not registered."}, status=400)
        return None

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any] | None:
        # signalbot posts JSON with Content-Type text/plain; the real server (gin BindJSON)
        # ignores the content type, so do we.
        try:
            body = json.loads(await request.text() or "{}")
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    @staticmethod
    def _bad(message: str = "Couldn't process request - invalid request") -> web.Response:
        return web.json_response({"error": message}, status=400)

    async def _health(self, request: web.Request) -> web.StreamResponse:
        self._note(request)
        return web.Response(status=204)

    async def _about(self, request: web.Request) -> web.StreamResponse:
        self._note(request)
        return web.json_response(
            {
                "versions": ["v1", "v2"],
                "build": 2,
                "mode": self.mode,
                "version": self.version,
                "capabilities": {"v2/send": ["quotes", "mentions"]},
            }
        )

    async def _accounts(self, request: web.Request) -> web.StreamResponse:
        self._note(request)
        return web.json_response([self.number] if self.registered else [])

    async def _groups(self, request: web.Request) -> web.StreamResponse:
        self._note(request)
        if (bad := self._wrong_number(request)) is not None:
            return bad
        return web.json_response([g.entry() for g in self.groups.values()])

    async def _group(self, request: web.Request) -> web.StreamResponse:
        self._note(request)
        if (bad := self._wrong_number(request)) is not None:
            return bad
        group = self.groups.get(request.match_info["group_id"])
        if group is None:
            return web.json_response({"error": "No group with that id"}, status=404)
        return web.json_response(group.entry())

    async def _receive(self, request: web.Request) -> web.StreamResponse:
        self._note(request)
        if self.mode != "json-rpc":
            # normal/native mode: a plain GET returning the messages received meanwhile.
            return web.json_response([])
        if (bad := self._wrong_number(request)) is not None:
            return bad
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.add(ws)
        self._outboxes[ws] = deque()
        self._frame_ready[ws] = asyncio.Event()
        self.attach_log.append(("attach", time.monotonic()))
        self.ws_connections += 1
        self._changed.set()
        reader = asyncio.create_task(self._drain(ws))
        try:
            await self._pump(ws, reader)
        finally:
            reader.cancel()
            self._detach(ws)
            self._sockets.discard(ws)
            self._changed.set()
            with contextlib.suppress(Exception):
                await ws.close()
        return ws

    @staticmethod
    async def _drain(ws: web.WebSocketResponse) -> None:
        # Reading is what notices the client going away (and answers its pings).
        async for _ in ws:
            pass

    async def _pump(self, ws: web.WebSocketResponse, reader: asyncio.Task[None]) -> None:
        while not ws.closed and not reader.done():
            outbox, ready = self._outboxes.get(ws), self._frame_ready.get(ws)
            if outbox is None or ready is None:
                return
            if not outbox:
                ready.clear()
                waiter = asyncio.ensure_future(ready.wait())
                await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                continue
            frame = outbox.popleft()
            try:
                await ws.send_str(frame)
            except (ConnectionError, RuntimeError):
                self.dropped.append(frame)  # upstream does not keep it for another socket either
                return

    async def _send(self, request: web.Request) -> web.StreamResponse:
        self._note(request)
        body = await self._body(request)
        if body is None:
            return self._bad()
        if not body.get("recipients"):
            return self._bad("Couldn't process request - please provide at least one recipient")
        if not body.get("number"):
            return self._bad("Couldn't process request - please provide a valid number")
        if (bad := self._wrong_number(request)) is not None:
            return bad
        if body["number"] != self.number:
            return self._bad(f"User {body['number']} is not registered.")
        recipients = body["recipients"]
        groups = [r for r in recipients if str(r).startswith("group.")]
        if groups and (len(groups) > 1 or len(groups) != len(recipients)):
            return self._bad("Couldn't process request - a message can go to numbers or to one group")
        if self._send_failures:
            status, error = self._send_failures.popleft()
            return web.json_response({**error, "account": self.number}, status=status)
        ts = self.next_timestamp()
        body = as_delivered(body)
        if self.record:
            self.sent.append(body)
            self.sent_timestamps.append(ts)
            self.content_types.append(request.headers.get("Content-Type", ""))
        if self.on_send is not None:
            self.on_send(body, ts)
        self._changed.set()
        return web.json_response([{"timestamp": str(ts)}], status=201)

    async def _typing(self, request: web.Request, action: str) -> web.StreamResponse:
        self._note(request)
        if (bad := self._wrong_number(request)) is not None:
            return bad
        body = await self._body(request)
        if not body or not body.get("recipient"):
            return self._bad()
        if self.record:
            self.typing.append((action, str(body["recipient"])))
        if self.on_typing is not None:
            self.on_typing(action, str(body["recipient"]))
        return web.Response(status=204)

    async def _typing_start(self, request: web.Request) -> web.StreamResponse:
        return await self._typing(request, "start")

    async def _typing_stop(self, request: web.Request) -> web.StreamResponse:
        return await self._typing(request, "stop")

    async def _react(self, request: web.Request) -> web.StreamResponse:
        self._note(request)
        if (bad := self._wrong_number(request)) is not None:
            return bad
        body = await self._body(request)
        if not body or not body.get("recipient") or not body.get("reaction") or not body.get("timestamp"):
            return self._bad()
        self.reactions.append(body)
        return web.Response(status=204)

    async def _unreact(self, request: web.Request) -> web.StreamResponse:
        self._note(request)
        body = await self._body(request)
        if not body:
            return self._bad()
        self.reactions.append({**body, "remove": True})
        return web.Response(status=204)

    async def _receipt(self, request: web.Request) -> web.StreamResponse:
        self._note(request)
        body = await self._body(request)
        if not body or body.get("receipt_type") not in ("read", "viewed"):
            return self._bad()
        self.receipts.append(body)
        return web.Response(status=204)

    async def _remote_delete(self, request: web.Request) -> web.StreamResponse:
        self._note(request)
        body = await self._body(request)
        if not body or not body.get("recipient") or not body.get("timestamp"):
            return self._bad()
        self.remote_deletes.append(body)
        return web.json_response({"timestamp": str(self.next_timestamp())}, status=201)

    async def _attachment(self, request: web.Request) -> web.StreamResponse:
        self._note(request)
        attachment_id = request.match_info["id"]
        found = self.attachments.get(attachment_id)
        if found is None:
            return web.json_response({"error": "Couldn't find attachment"}, status=404)
        self.attachment_downloads.append(attachment_id)
        data, content_type = found
        return web.Response(body=data, content_type=content_type)

    async def _delete_attachment(self, request: web.Request) -> web.StreamResponse:
        self._note(request)
        self.attachments.pop(request.match_info["id"], None)
        return web.Response(status=204)

    async def _no_content(self, request: web.Request) -> web.StreamResponse:
        self._note(request)
        return web.Response(status=204)
