"""The model client: streams chat answers from any OpenAI-compatible API through the official library.

The core sees one small interface, :class:`ModelClient`: ``stream()`` yields :class:`Delta` text
pieces and, when the server reports it, one :class:`Usage` at the end; ``list_models()`` backs a
health check. Every failure becomes one :class:`ModelError` whose ``kind`` the caller turns into
a sentence for the person (quota used up, provider busy, provider down, request too large, ...).

What the ``openai`` library does for us: retries of 429, 408/409, 5xx and connection failures
before the response starts (``max_retries``, honouring ``retry-after`` / ``retry-after-ms``).
The streamed request is sent without the library's per-request plumbing (options models, header
merging, URL parsing: three quarters of the model client's CPU under load, for a request that is
the same every time but for its body): it is the request the library builds (URL, headers and
timeouts, taken from the library once), on the library's HTTP client (its response hooks run),
in the library's retry loop written out on the library's own helpers (whether to retry, how long
to wait, which exception to raise).
What it does not, and is done here: it would retry ``insufficient_quota`` (a 429 that retrying
cannot fix), it has no timeout *between* streamed chunks, and it never retries once a stream
has started (neither do we: the text already shown would be repeated).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import httpx2
import openai
from openai._httpx2 import request_exceptions, timeout_exceptions
from openai._models import FinalRequestOptions
from openai._utils._json import openapi_dumps

from core import sse
from core.model_errors import ErrorKind, ModelError, classify

if TYPE_CHECKING:
    from core.window import Reported  # window.py builds on this module

__all__ = [
    "Delta",
    "ErrorKind",
    "ModelClient",
    "ModelError",
    "ModelEvent",
    "OpenAIModelClient",
    "Stop",
    "Usage",
    "classify",
]

log = logging.getLogger(__name__)

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_CHUNK_TIMEOUT = 60.0
DEFAULT_CONCURRENCY = 64
DEFAULT_MAX_RETRIES = 2
# A model's window is metadata: a turn does not wait a minute for it (the catalogue's default then).
WINDOW_WAIT = 5.0
WINDOW_RETRY = 30.0  # seconds before a server that did not answer is asked again

# OpenAI's newer families reject ``max_tokens`` and want ``max_completion_tokens``.
_COMPLETION_TOKENS_FAMILIES = ("o1", "o3", "o4", "gpt-5")


@dataclass(frozen=True, slots=True)
class Delta:
    """The next piece of the answer's text (only the new piece, not the whole answer)."""

    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens the provider counted for the request; yielded once, after the last Delta."""

    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class Stop:
    """The answer ended for a reason other than being complete: ``length`` (the token limit
    was reached) or ``content_filter``. Yielded after the last Delta; a complete answer has none."""

    reason: str


ModelEvent = Delta | Usage | Stop


class ModelClient(Protocol):
    """What the core needs from a model provider."""

    def stream(
        self, model: str, messages: list[dict[str, str]], max_tokens: int | None = None
    ) -> AsyncIterator[ModelEvent]:
        """Stream the answer to ``messages``; raises :class:`ModelError` on failure."""
        ...

    async def list_models(self) -> list[str]:
        """The model ids the provider offers; raises :class:`ModelError` on failure."""
        ...


async def _stop_retrying_quota(response: httpx2.Response) -> None:
    """Response hook: mark ``insufficient_quota`` as not retryable.

    OpenAI sends it as a plain 429, which the library would retry with back-off; telling it
    ``x-should-retry: false`` (a header the library obeys) makes the error surface at once.
    """
    if response.status_code != 429:
        return
    await response.aread()
    try:
        body = json.loads(response.content)
    except ValueError:
        return
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and "insufficient_quota" in (error.get("code"), error.get("type")):
        response.headers["x-should-retry"] = "false"


def _token_limit_param(model: str) -> str:
    name = model.strip().lower().rsplit("/", 1)[-1]
    for family in _COMPLETION_TOKENS_FAMILIES:
        if name.startswith(family) and (len(name) == len(family) or not name[len(family)].isalnum()):
            return "max_completion_tokens"
    return "max_tokens"


class OpenAIModelClient:
    """A :class:`ModelClient` on ``openai.AsyncOpenAI`` (Chat Completions, streamed).

    * ``base_url``: the provider root including ``/v1``; None uses the library's default
      (``OPENAI_BASE_URL`` or api.openai.com).
    * ``api_key``: sent as a bearer token; may be empty for local servers that need none.
    * ``connect_timeout``: seconds to establish a connection.
    * ``chunk_timeout``: seconds to wait for the response to start and between streamed chunks;
      a stream that stalls longer fails (``interrupted`` if text was already streamed).
    * ``max_retries``: retries of 429 / 5xx / connection failures before any text is streamed.
    * ``http_client``: an ``httpx2.AsyncClient`` to use instead (tests, proxies); the quota
      hook is then not installed.
    * ``concurrency``: answers generated at the same time; more wait for a free slot. The HTTP
      pool scans all its connections for every request, so an unbounded pool costs more CPU
      per request the more chats are active.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        chunk_timeout: float = DEFAULT_CHUNK_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx2.AsyncClient | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self.chunk_timeout = chunk_timeout
        self._windows: dict[str, int | None] = {}
        self._window_retry: dict[str, float] = {}  # model -> when to ask a silent server again
        self._asking: dict[str, asyncio.Future[Reported]] = {}  # questions in flight
        self._slots = asyncio.Semaphore(concurrency)
        timeout = httpx2.Timeout(chunk_timeout, connect=connect_timeout)
        if http_client is None:
            http_client = openai.DefaultAioHttpClient(
                timeout=timeout,
                limits=httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
                event_hooks={"response": [_stop_retrying_quota]},
            )
        self._client = openai.AsyncOpenAI(
            base_url=base_url or None,
            # Local servers (Ollama, llama.cpp) need no key, but the library insists on one.
            api_key=api_key or "no-key",
            timeout=timeout,
            max_retries=max_retries,
            http_client=http_client,
        )
        self._first: _Template | None = None  # the library's streamed request, body aside

    @classmethod
    def from_settings(
        cls,
        base_url: str | None,
        api_key: str | None,
        timeout_s: float = DEFAULT_CHUNK_TIMEOUT,
        *,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> OpenAIModelClient:
        """Build from the settings ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` and a timeout in seconds."""
        return cls(
            base_url,
            api_key,
            connect_timeout=connect_timeout_s,
            chunk_timeout=timeout_s,
            max_retries=max_retries,
        )

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIModelClient(base_url={str(self._client.base_url)!r})"

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.close()

    async def __aenter__(self) -> OpenAIModelClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def context_window(self, model: str) -> int | None:
        """The window in tokens the server reports for ``model``, or None (never raises).

        Asked once, and again after ``WINDOW_RETRY`` seconds while the server has not answered
        (down, or starting: a 5xx); None meanwhile. Turns that need it at the same moment (a
        burst after a start) share the one question, which waits ``WINDOW_WAIT`` at most.
        """
        if model in self._windows:
            return self._windows[model]
        if time.monotonic() < self._window_retry.get(model, 0.0):
            return None
        asking = self._asking.get(model)
        if asking is None:
            from core.window import ask_window  # window.py builds on this module

            wait = min(self.chunk_timeout, WINDOW_WAIT)
            asking = self._asking[model] = asyncio.ensure_future(ask_window(self._client, model, wait))
            asking.add_done_callback(functools.partial(self._asked, model))
        reported = await asyncio.shield(asking)
        if reported.final:
            self._windows[model] = reported.window
        else:
            self._window_retry[model] = time.monotonic() + WINDOW_RETRY
        return reported.window

    def _asked(self, model: str, asking: asyncio.Future[Reported]) -> None:
        self._asking.pop(model, None)
        if not asking.cancelled() and asking.exception() is not None:  # retrieved: the client was closed
            log.debug("the window question for %s ended with %r", model, asking.exception())

    async def list_models(self) -> list[str]:
        """The model ids from ``GET /v1/models``; raises :class:`ModelError` on failure."""
        try:
            async with asyncio.timeout(self.chunk_timeout):
                page = await self._client.models.list()
            return [m.id for m in page.data]
        except (openai.OpenAIError, TimeoutError) as exc:
            raise classify(exc) from exc
        except (ValueError, TypeError, AttributeError) as exc:
            raise ModelError("bad_response", f"unexpected /v1/models reply: {exc}") from exc

    async def stream(
        self, model: str, messages: Sequence[Mapping[str, str]], max_tokens: int | None = None
    ) -> AsyncGenerator[ModelEvent, None]:
        """Stream the answer once a generation slot is free (see ``concurrency``)."""
        async with self._slots:
            async for event in self._stream(model, messages, max_tokens):
                yield event

    async def _stream(
        self, model: str, messages: Sequence[Mapping[str, str]], max_tokens: int | None = None
    ) -> AsyncGenerator[ModelEvent, None]:
        """Stream the answer: :class:`Delta` pieces, then one :class:`Usage` if the server sent it.

        ``messages`` is never modified. Raises :class:`ModelError`; a cancellation
        propagates as usual and closes the HTTP response, and so does closing the generator
        early (``aclose()``, or leaving an ``async for`` over it with ``contextlib.aclosing``).
        """
        params = _request_params(model, messages, max_tokens)
        response = await self._open(params)
        read = _ChunkReader()
        chunks = sse.payloads(response)
        try:
            while (chunk := await self._next_chunk(chunks)) is not _END:
                for text in read.chunk(chunk):
                    yield Delta(text)
        except (openai.OpenAIError, TimeoutError, ValueError, TypeError, AttributeError) as exc:
            # ValueError & co: a chunk that could not be parsed (a non-JSON SSE line).
            log.warning("model stream for %s failed after %d pieces: %r", model, len(read.produced), exc)
            raise classify(exc, "".join(read.produced)) from exc
        finally:
            await chunks.aclose()
            await response.aclose()
        if read.chunks == 0:
            await self._explain_silence(params, model)
        if read.stopped is not None:
            yield read.stopped
        if read.usage is not None:
            yield read.usage

    async def _open(self, params: dict[str, Any]) -> httpx2.Response:
        """Post the streamed request; the response is open when this returns (its body unread).

        The library's typed create() walks every message through its parameter transform (a
        recursive TypedDict walk: 40 % of a turn's CPU with a long history), so the body, plain
        JSON already, is posted as is; the events are read by core/sse.py. The attempts are sent
        as the library's retry loop sends them (see the module's docstring).
        """
        try:
            return await self._attempts(openapi_dumps(params))
        except openai.OpenAIError as exc:
            raise classify(exc) from exc

    async def _attempts(self, body: bytes) -> httpx2.Response:
        """The library's ``AsyncAPIClient.request`` loop for one streamed POST, on its own helpers:
        the same request each time (``x-stainless-retry-count`` counting the retries), a failure
        retried when the library would, after the delay it would wait, and the library's own
        exception when it gives up."""
        client = self._client
        if self._first is None:
            built = client._build_request(
                FinalRequestOptions.construct(method="post", url="/chat/completions", json_data={})
            )
            fixed = [(k, v) for k, v in built.headers.multi_items() if k.lower() not in _PER_REQUEST_HEADERS]
            self._first = _Template(built.url, fixed, built.extensions)
        first = self._first
        # The library sends a key only where the API takes one (its idempotency header); OpenAI's has none.
        keyed = [(client._idempotency_header, client._idempotency_key())] if client._idempotency_header else []
        retries = client.max_retries
        for taken in range(retries + 1):
            headers = [*first.headers, *keyed, ("X-Stainless-Retry-Count", str(taken))]
            request = httpx2.Request("POST", first.url, headers=headers, content=body, extensions=first.extensions)
            left = retries - taken
            try:
                response = await client._client.send(request, stream=True)
            except timeout_exceptions() as exc:
                if left > 0:
                    await self._wait_to_retry(left, None, type(exc).__name__)
                    continue
                raise openai.APITimeoutError(request=request) from exc
            except request_exceptions() as exc:
                if left > 0:
                    await self._wait_to_retry(left, None, type(exc).__name__)
                    continue
                raise openai.APIConnectionError(request=request) from exc
            if response.status_code < 400:
                return response
            if left > 0 and client._should_retry(response):
                await response.aclose()
                await self._wait_to_retry(left, response.headers, f"status {response.status_code}")
                continue
            await response.aread()
            raise client._make_status_error_from_response(response)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _wait_to_retry(self, left: int, headers: httpx2.Headers | None, reason: str) -> None:
        delay = self._client._calculate_retry_timeout(left, _RETRY_TIMING, headers)
        log.info("model request failed (%s); retrying in %.2f s (%d left)", reason, delay, left)
        await asyncio.sleep(delay)

    async def _next_chunk(self, iterator: AsyncIterator[object]) -> object:
        """The next chunk, or ``_END``; waiting longer than ``chunk_timeout`` raises TimeoutError."""
        try:
            async with asyncio.timeout(self.chunk_timeout):
                return await iterator.__anext__()
        except StopAsyncIteration:
            return _END

    async def _explain_silence(self, params: dict[str, Any], model: str) -> None:
        """Raise the error behind a stream that sent not even the opening chunk.

        llama-cpp-python's server answers a streamed request it cannot serve (bad roles, prompt
        over the window) so, giving the reason only in its log; the same request without
        streaming gets the real error, so ask once that way.
        """
        probe = {**params, "stream": False, _token_limit_param(model): 1}
        del probe["stream_options"]
        try:
            await self._client.post("/chat/completions", body=probe, cast_to=object)
        except openai.OpenAIError as exc:
            raise classify(exc) from exc
        raise ModelError("bad_response", "the provider answered without a single streamed chunk")


_END = object()  # the stream's end, as _next_chunk reports it


@dataclass(frozen=True, slots=True)
class _Template:
    """The library's streamed request without its body and per-request headers, taken from it once."""

    url: httpx2.URL
    headers: list[tuple[str, str]]
    extensions: dict[str, Any]

# Headers of the library's request that belong to one request, not to every one.
_PER_REQUEST_HEADERS = frozenset({"content-length", "idempotency-key", "x-stainless-retry-count"})
# The library's retry timing reads only the request's retry count from these.
_RETRY_TIMING = FinalRequestOptions.construct(method="post", url="/chat/completions")


def _request_params(model: str, messages: Sequence[Mapping[str, str]], max_tokens: int | None) -> dict[str, Any]:
    """The JSON body of a streamed Chat Completions request (the list of ``messages`` copied)."""
    params: dict[str, Any] = {
        "model": model,
        # Never modified here or by the library: only a Mapping that is not a dict needs copying to be sent.
        "messages": [m if type(m) is dict else dict(m) for m in messages],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if max_tokens is not None:
        params[_token_limit_param(model)] = max_tokens
    return params


class _ChunkReader:
    """Reads streamed chunks: the text so far, the last usage report, why the answer stopped."""

    def __init__(self) -> None:
        self.produced: list[str] = []
        self.usage: Usage | None = None
        self.stopped: Stop | None = None
        self.chunks = 0

    def chunk(self, chunk: object) -> Iterator[str]:
        """The new text pieces of one chunk, in order; raises ValueError for a chunk that is no object."""
        self.chunks += 1
        if not isinstance(chunk, dict):
            raise ValueError(f"a streamed chunk is not a JSON object: {chunk!r:.80}")
        reported = chunk.get("usage")
        if isinstance(reported, dict):
            # Some servers (vLLM's continuous usage stats) repeat it; the last one counts.
            self.usage = Usage(int(reported.get("prompt_tokens") or 0), int(reported.get("completion_tokens") or 0))
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            yield from self._choice(choice)

    def _choice(self, choice: dict[str, Any]) -> Iterator[str]:
        reason = choice.get("finish_reason")
        if reason in ("length", "content_filter"):
            self.stopped = Stop(str(reason))
        delta = choice.get("delta")
        text = delta.get("content") if isinstance(delta, dict) else None
        if text:
            self.produced.append(text)
            yield str(text)
