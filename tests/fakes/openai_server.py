"""A scripted fake OpenAI-compatible server, for driving the real ``openai`` client over real HTTP.

It speaks the wire format recorded in ``shared/research/protocols.md`` §3: ``POST /v1/chat/completions``
(JSON, or Server-Sent Events when ``stream`` is true, with the final usage chunk only when
``stream_options.include_usage`` is set, then ``data: [DONE]``), ``GET /v1/models``, and the real
error body ``{"error": {"message", "type", "param", "code"}}`` with ``retry-after`` /
``retry-after-ms`` headers. It listens on 127.0.0.1 on an ephemeral port.

Script it like simonw/llm's mock model: queue behaviours for the next chat requests, then inspect
what the model was sent::

    from core.llm import OpenAIModelClient
    from tests.fakes.openai_server import Error, FakeOpenAI, Reply, Usage

    async with FakeOpenAI() as server:                     # or the ``openai_server`` fixture
        client = OpenAIModelClient(server.base_url, "sk-test")   # or openai.AsyncOpenAI(base_url=...)
        server.enqueue("Hello there!")                     # streamed in chunks of ``chunk_size`` chars
        server.enqueue(Reply("Hi", usage=Usage(12, 1)))    # fixed token counts
        server.enqueue(Error.rate_limited(retry_after_ms=10), Reply("after the retry"))
        server.enqueue(Error.insufficient_quota())         # also server_error, context_length_exceeded,
                                                           # model_not_found, invalid_api_key, Error(...)
        server.enqueue(Reply("slow", chunk_size=1, chunk_delay=0.05))
        server.enqueue(Reply("late", first_chunk_delay=1.0))         # nothing, not even headers, for 1 s
        server.enqueue(Reply("partial answer", break_after=2))       # connection dropped after 2 chunks
        server.enqueue(Reply("partial answer", break_after=2, break_with_error=True))  # SSE error event
        server.enqueue(Reply("stuck", hang_after=1))                  # never finishes
        ...
        server.chat_requests[-1].messages       # the full context the model received
        server.chat_requests[-1].json           # the whole request body (model, stream_options, ...)
        server.chat_requests[-1].retry_count    # the client's x-stainless-retry-count header
        server.lookups                          # GET /v1/models and /props requests (kept apart)
        server.request_count                    # chat requests so far (also with record=False)
        await server.wait_for_requests(2)       # until the 2nd chat request arrived (bound it with
                                                # asyncio.timeout)
        await server.wait_for_disconnects(1)    # until the client abandoned a stream (cancel, timeout)

When the queue is empty every chat request gets the default reply, ``"You said: <last user
message>"`` (deterministic, handy for end-to-end tests of the bots). Each queued behaviour is
used by exactly one request, in order, so a request the client retries consumes the next entry
(queue the error *and* the reply that follows it). ``GET /v1/models`` lists ``models`` unless
:meth:`FakeOpenAI.enqueue_models_error` queued a failure.

Usage is reported as the real API does: in streams only when the request asks for it with
``stream_options.include_usage`` (one last chunk with ``"choices": []``); counts are estimated
(about one token per four characters) unless fixed by ``Usage``; ``send_usage=False`` (per reply
or per server) imitates servers that never report usage.

Real model servers (``shared/research/local-model.md``) are modelled by constructor options:

* ``context_window=N``: a prompt over N tokens (the fake's estimate below) gets OpenAI's 400
  ``context_length_exceeded`` "maximum context length is N tokens" (also what vLLM and
  llama-cpp-python send); an answer that would overflow the window stops there with
  ``finish_reason: "length"``, as llama.cpp does (``llama_cpp/llama.py`` clamps ``max_tokens`` to
  ``n_ctx - len(prompt)``).
* ``strict_roles=True``: a chat template that demands user/assistant alternation after an
  optional first system message, as Gemma's and Mistral's do under llama.cpp ``--jinja`` and vLLM
  (the Jinja ``raise_exception('Conversation roles must alternate user/assistant/user/assistant/...')``),
  answered with 400 like vLLM's ``serving_chat.py``.
* ``reports``: where the window is published. ``"openai"``: nowhere. ``"llama.cpp"``:
  ``GET /props`` ``default_generation_settings.n_ctx`` and ``meta.n_ctx_train`` in ``/v1/models``
  (llama.cpp ``tools/server/server.cpp``). ``"vllm"``: ``max_model_len`` in ``/v1/models``
  (vllm ``entrypoints/openai/protocol.py`` ``ModelCard``). ``"openrouter"``: ``context_length``
  in ``/v1/models`` (openrouter.ai/docs/api-reference/list-available-models).
* ``chars_per_token=3``: count tokens as a tokenizer that splits finer than Ferry's estimate.
* ``empty_stream_failures=True``: llama-cpp-python's server, which answers a streamed request it
  cannot serve with HTTP 200 and an empty event stream (no error event, no ``[DONE]``); the same
  request without streaming gets the proper error.

A pytest fixture::

    @pytest.fixture
    async def openai_server():
        async with FakeOpenAI() as server:
            yield server

It is fast enough for benchmarks (no access log; about 2,000 streamed requests a second with an
aiohttp client in the same loop); pass ``record=False`` or call :meth:`FakeOpenAI.clear` to keep
memory flat over very many requests. Note that :class:`Usage` here is the fake's script value,
not ``core.llm.Usage``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import math
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.openai_media import install as install_media

CREATED = 1700000000
"""The ``created`` timestamp of every response (fixed, so outputs are deterministic)."""


@dataclass(frozen=True)
class Usage:
    """The token counts the fake reports; None fields are estimated from the text (chars / 4)."""

    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Reply:
    """Answer with ``text``; streamed in chunks of ``chunk_size`` characters when ``stream`` is set.

    * ``chunk_delay``: seconds to sleep before each content chunk (a slow stream).
    * ``first_chunk_delay``: seconds before the first byte of the response (headers included);
      None uses the server's ``delay_first_chunk``.
    * ``usage``: the counts to report; None estimates them. ``send_usage=False`` imitates a
      server that ignores ``stream_options.include_usage`` (and leaves ``usage`` out of JSON replies).
    * ``break_after``: send that many content chunks, then drop the connection mid-body
      (or, with ``break_with_error``, send an SSE error event and end the stream).
    * ``hang_after``: send that many content chunks, then send nothing more until the client
      gives up or the server closes.
    * ``finish_reason``: of the last chunk (``"length"`` to imitate a truncated answer).
    * ``ignore_stream``: answer with plain JSON even when a stream was asked for (a broken server).
    """

    text: str
    chunk_size: int | None = None
    chunk_delay: float = 0.0
    first_chunk_delay: float | None = None
    usage: Usage | None = None
    send_usage: bool = True
    break_after: int | None = None
    break_with_error: bool = False
    hang_after: int | None = None
    finish_reason: str = "stop"
    ignore_stream: bool = False
    model: str | None = None  # the model name reported; None echoes the request's


@dataclass(frozen=True)
class Error:
    """Answer with an HTTP error and the real OpenAI error body."""

    status: int
    message: str
    type: str | None = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    retry_after: float | str | None = None  # seconds (or an HTTP date), sent as ``retry-after``
    retry_after_ms: float | None = None  # sent as ``retry-after-ms``
    headers: Mapping[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The JSON body, exactly as OpenAI sends it."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    # --- the errors OpenAI really sends -------------------------------------------------

    @classmethod
    def rate_limited(cls, retry_after_ms: float | None = 10, retry_after: float | None = None) -> Error:
        """429 rate_limit_exceeded (the client retries it, after ``retry-after-ms``)."""
        return cls(
            429,
            "Rate limit reached for requests. Please try again shortly.",
            type="requests",
            code="rate_limit_exceeded",
            retry_after=retry_after,
            retry_after_ms=retry_after_ms,
        )

    @classmethod
    def insufficient_quota(cls) -> Error:
        """429 insufficient_quota: the account is out of credit; retrying does not help."""
        return cls(
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            type="insufficient_quota",
            code="insufficient_quota",
        )

    @classmethod
    def server_error(cls, status: int = 500, retry_after_ms: float | None = 10) -> Error:
        """A 5xx the client retries."""
        return cls(
            status,
            "The server had an error while processing your request. Sorry about that!",
            type="server_error",
            code=None,
            retry_after_ms=retry_after_ms,
        )

    @classmethod
    def context_length_exceeded(cls, limit: int = 8192, asked: int = 9000) -> Error:
        """400 context_length_exceeded."""
        return cls(
            400,
            f"This model's maximum context length is {limit} tokens. However, your messages resulted "
            f"in {asked} tokens. Please reduce the length of the messages.",
            type="invalid_request_error",
            code="context_length_exceeded",
            param="messages",
        )

    @classmethod
    def model_not_found(cls, model: str = "no-such-model") -> Error:
        """404 model_not_found."""
        return cls(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            type="invalid_request_error",
            code="model_not_found",
        )

    @classmethod
    def invalid_api_key(cls) -> Error:
        """401 invalid_api_key."""
        return cls(
            401,
            "Incorrect API key provided: sk-test. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            type="invalid_request_error",
            code="invalid_api_key",
        )


Behaviour = Reply | Error


@dataclass
class RecordedRequest:
    """One request the fake received: method, path, headers (lower-case names) and parsed JSON body."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The chat messages of a chat completion request (empty for other requests)."""
        if isinstance(self.json, dict):
            return list(self.json.get("messages") or [])
        return []

    @property
    def retry_count(self) -> int:
        """The ``x-stainless-retry-count`` the openai client sent (0 for a first attempt)."""
        return int(self.headers.get("x-stainless-retry-count", "0"))


def estimate_tokens(text: str) -> int:
    """The fake's usage estimate: one token per four characters, rounded up."""
    return math.ceil(len(text) / 4)


def _message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def default_reply_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The reply used when the queue is empty: ``"You said: <last user message>"``."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return f"You said: {_message_text(message)}"
    return "You said nothing."


class FakeOpenAI:
    """A fake OpenAI-compatible API on 127.0.0.1; see the module docstring for how to script it.

    * ``models``: the ids ``GET /v1/models`` lists.
    * ``chunk_size``: characters per streamed content chunk when a :class:`Reply` sets none.
    * ``delay_first_chunk``: seconds before every response starts (a slow provider).
    * ``usage``: fixed counts for every reply that sets none (None: estimated from the text).
    * ``send_usage``: False imitates a server that never reports usage.
    * ``record``: False keeps no request log (for long benchmarks).
    """

    def __init__(
        self,
        *,
        models: Sequence[str] = ("fake-model",),
        chunk_size: int = 8,
        delay_first_chunk: float = 0.0,
        usage: Usage | None = None,
        send_usage: bool = True,
        record: bool = True,
        port: int = 0,
        context_window: int | None = None,
        strict_roles: bool = False,
        reports: str = "openai",
        empty_stream_failures: bool = False,
        chars_per_token: int = 4,
    ) -> None:
        self.chars_per_token = chars_per_token
        self.context_window = context_window
        self.strict_roles = strict_roles
        self.reports = reports
        self.empty_stream_failures = empty_stream_failures
        self.models = list(models)
        self.chunk_size = chunk_size
        self.delay_first_chunk = delay_first_chunk
        self.usage = usage
        self.send_usage = send_usage
        self.record = record
        self.requests: list[RecordedRequest] = []
        self.lookups: list[RecordedRequest] = []  # GET /v1/models and /props
        self.request_count = 0  # counts chat requests even when record=False
        # Streams the client abandoned before the end (seen while hanging or writing a chunk).
        self.disconnects = 0
        self._queue: deque[Behaviour] = deque()
        self._models_queue: deque[Error] = deque()
        self._port = port
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._ids = itertools.count(1)
        self._changed = asyncio.Event()  # set whenever a request arrives or a client disconnects
        # Extra aiohttp middlewares, outermost first (a bench's timing); added when :meth:`start` runs.
        self.middlewares: list[Any] = []
        # Called after each content piece of a stream has been written (request, index, count):
        # the benches take the moments pieces really left from here, not from the delays asked for.
        self.on_piece: Callable[[web.Request, int, int], None] | None = None

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> FakeOpenAI:
        """Start listening; returns self."""
        app = web.Application(middlewares=self.middlewares)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/props", self._props)
        self.media = install_media(app)  # transcription, speech, images: tests/fakes/openai_media.py
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        return self

    async def close(self) -> None:
        """Stop listening and end any hanging responses."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOpenAI:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return self._port

    @property
    def base_url(self) -> str:
        """The value for ``OPENAI_BASE_URL`` / ``AsyncOpenAI(base_url=...)`` (ends in ``/v1``)."""
        return f"http://127.0.0.1:{self._port}/v1"

    # --- scripting ---------------------------------------------------------------------

    def enqueue(self, *behaviours: Behaviour | str) -> None:
        """Queue behaviours for the next chat requests, one per request; a str means ``Reply(str)``."""
        for behaviour in behaviours:
            self._queue.append(Reply(behaviour) if isinstance(behaviour, str) else behaviour)

    def enqueue_models_error(self, error: Error) -> None:
        """Make the next ``GET /v1/models`` fail with ``error``."""
        self._models_queue.append(error)

    @property
    def pending(self) -> int:
        """How many queued behaviours have not been used yet."""
        return len(self._queue)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """The recorded chat completion requests, oldest first."""
        return [r for r in self.requests if r.path == "/v1/chat/completions"]

    def clear(self) -> None:
        """Forget recorded requests and queued behaviours."""
        self.requests.clear()
        self.lookups.clear()
        self._queue.clear()
        self._models_queue.clear()

    async def wait_for_requests(self, count: int) -> None:
        """Wait until at least ``count`` chat requests have arrived in total.

        Bound it yourself: ``async with asyncio.timeout(5): await server.wait_for_requests(2)``.
        """
        while self.request_count < count:
            self._changed.clear()
            await self._changed.wait()

    async def wait_for_disconnects(self, count: int) -> None:
        """Wait until the client has abandoned at least ``count`` streams (timeouts, cancellations)."""
        while self.disconnects < count:
            self._changed.clear()
            await self._changed.wait()

    # --- handlers ----------------------------------------------------------------------

    async def _record(self, request: web.Request) -> Any:
        try:
            body = await request.json() if request.body_exists else None  # read before by openai_media
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if self.record:
            recorded = RecordedRequest(
                request.method, request.path, {k.lower(): v for k, v in request.headers.items()}, body
            )
            # Model look-ups (a client asking for the context window) are kept apart, so that
            # ``requests`` stays the conversation with the model.
            (self.lookups if request.method == "GET" else self.requests).append(recorded)
        return body

    def _disconnected(self) -> None:
        self.disconnects += 1
        self._changed.set()

    async def _models(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        if self._models_queue:
            return self._error_response(self._models_queue.popleft())
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "ferry-fake"} for m in self.models]
        window = self.context_window
        for entry in data:
            if self.reports == "llama.cpp":
                entry["meta"] = {"n_ctx_train": 32768, "n_vocab": 262144}
            elif self.reports == "vllm" and window:
                entry["max_model_len"] = window
            elif self.reports == "openrouter" and window:
                entry["context_length"] = window
                entry["top_provider"] = {"context_length": window, "max_completion_tokens": None}
        return web.json_response({"object": "list", "data": data})

    async def _props(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        if self.reports != "llama.cpp":
            return web.Response(status=404, text="File Not Found")
        settings = {"n_ctx": self.context_window or 4096, "temperature": 0.8}
        return web.json_response({"default_generation_settings": settings, "total_slots": 1})

    def _refusal(self, body: dict[str, Any]) -> Error | None:
        """What a real server's chat template or context check says about this request, if anything."""
        messages = [m for m in body["messages"] if isinstance(m, dict)]
        if self.strict_roles:
            rest = messages[1:] if messages and messages[0].get("role") == "system" else messages
            for i, m in enumerate(rest):
                if m.get("role") != ("user" if i % 2 == 0 else "assistant"):
                    return Error(400, "Conversation roles must alternate user/assistant/user/assistant/...",
                                 type="BadRequestError", code=None)
        if self.context_window is not None:
            prompt = self._prompt_tokens(messages)
            if prompt > self.context_window:
                return Error.context_length_exceeded(self.context_window, prompt)
        return None

    def _tokens(self, text: str) -> int:
        return math.ceil(len(text) / self.chars_per_token)

    def _prompt_tokens(self, messages: list[Any]) -> int:
        """The prompt's size as this server counts it (a real tokenizer may count more than Ferry's estimate)."""
        return sum(3 + self._tokens(_message_text(m)) for m in messages if isinstance(m, dict)) + 3

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        self.request_count += 1
        self._changed.set()
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return self._error_response(Error(400, "'messages' is a required property", code=None, param="messages"))
        refusal = self._refusal(body)
        if refusal is not None:
            if body.get("stream") and self.empty_stream_failures:
                return web.Response(status=200, content_type="text/event-stream", body=b"")
            return self._error_response(refusal)
        behaviour = self._queue.popleft() if self._queue else Reply(default_reply_text(body["messages"]))
        if self.context_window is not None and isinstance(behaviour, Reply):
            room = max(self.context_window - self._prompt_tokens(body["messages"]), 0)
            limit = body.get("max_tokens") or body.get("max_completion_tokens")
            room = (min(room, limit) if isinstance(limit, int) else room) * self.chars_per_token
            if len(behaviour.text) > room:  # llama.cpp stops at max_tokens or where the window is full
                behaviour = dataclasses.replace(behaviour, text=behaviour.text[:room], finish_reason="length")
        if isinstance(behaviour, Error):
            return self._error_response(behaviour)
        delay = self.delay_first_chunk if behaviour.first_chunk_delay is None else behaviour.first_chunk_delay
        if delay > 0:
            await asyncio.sleep(delay)
        completion_id = f"chatcmpl-{next(self._ids)}"
        model = behaviour.model or str(body.get("model", "fake-model"))
        usage = self._usage_for(behaviour, body["messages"])
        if body.get("stream") and not behaviour.ignore_stream:
            return await self._stream(request, behaviour, completion_id, model, usage, body)
        payload: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": behaviour.text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": behaviour.finish_reason,
                }
            ],
        }
        if usage is not None:
            payload["usage"] = usage
        return web.json_response(payload, headers={"x-request-id": f"req_{completion_id}"})

    def _usage_for(self, reply: Reply, messages: list[Any]) -> dict[str, int] | None:
        if not (reply.send_usage and self.send_usage):
            return None
        fixed = reply.usage or self.usage
        if fixed is not None:
            prompt, completion = fixed.prompt_tokens, fixed.completion_tokens
        else:
            prompt = self._prompt_tokens(messages)
            completion = self._tokens(reply.text)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    @staticmethod
    def _error_response(error: Error) -> web.Response:
        headers = dict(error.headers)
        if error.retry_after is not None:
            headers["retry-after"] = str(error.retry_after)
        if error.retry_after_ms is not None:
            headers["retry-after-ms"] = str(error.retry_after_ms)
        return web.json_response(error.body(), status=error.status, headers=headers)

    async def _stream(
        self,
        request: web.Request,
        reply: Reply,
        completion_id: str,
        model: str,
        usage: dict[str, int] | None,
        body: dict[str, Any],
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "x-request-id": f"req_{completion_id}",
            }
        )
        await response.prepare(request)
        head = (
            f'{{"id":"{completion_id}","object":"chat.completion.chunk",'
            f'"created":{CREATED},"model":{json.dumps(model)},'
        )

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choices = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
            return f'data: {head}"choices":{json.dumps(choices)},"usage":null}}\n\n'.encode()

        size = max(1, reply.chunk_size or self.chunk_size)
        pieces = [reply.text[i : i + size] for i in range(0, len(reply.text), size)]
        try:
            await response.write(chunk({"role": "assistant", "content": ""}))
            for n, piece in enumerate(pieces):
                if reply.break_after is not None and n >= reply.break_after:
                    return await self._break(request, response, reply)
                if reply.hang_after is not None and n >= reply.hang_after:
                    return await self._hang(request, response)
                if reply.chunk_delay > 0:
                    await asyncio.sleep(reply.chunk_delay)
                await response.write(chunk({"content": piece}))
                if self.on_piece is not None:
                    self.on_piece(request, n, len(pieces))
            if reply.break_after is not None:
                return await self._break(request, response, reply)
            if reply.hang_after is not None:
                return await self._hang(request, response)
            await response.write(chunk({}, reply.finish_reason))
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            if include_usage and usage is not None:
                await response.write(f'data: {head}"choices":[],"usage":{json.dumps(usage)}}}\n\n'.encode())
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except ConnectionError:
            self._disconnected()  # the client went away (a timeout or a cancellation on its side)
        return response

    async def _break(self, request: web.Request, response: web.StreamResponse, reply: Reply) -> web.StreamResponse:
        if reply.break_with_error:
            error = {
                "error": {
                    "message": "The server had an error while processing your request.",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            }
            await response.write(f"data: {json.dumps(error)}\n\n".encode())
            await response.write_eof()
            return response
        # Drop the connection without the final empty chunk: the client sees a truncated body.
        if request.transport is not None:
            request.transport.close()
        return response

    async def _hang(self, request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        # Send nothing more until the client goes away (its timeout or cancellation) or the
        # server closes. aiohttp does not cancel a handler when its client disconnects, so look.
        while not self._closing.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                self._disconnected()
                return response
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.01):
                    await self._closing.wait()
        if request.transport is not None:
            request.transport.close()
        return response


@contextlib.asynccontextmanager
async def fake_openai(**options: Any) -> AsyncIterator[FakeOpenAI]:
    """``async with fake_openai() as server:``, a started :class:`FakeOpenAI` (options as its constructor)."""
    async with FakeOpenAI(**options) as server:
        yield server
