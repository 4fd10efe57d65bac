"""The events of a streamed Chat Completions response, read straight off its HTTP body.

The openai library's ``AsyncStream`` decodes them through a dozen generator layers for every
chunk (each resumed at every network read) and, after ``[DONE]``, drains the body in an anyio
cancel scope: together about a third of the model client's CPU on the event loop in
``bench.telegram_bench``. The request itself still goes through the library (retries, status
errors); this reads the body it returns, and keeps what ``AsyncStream`` does that matters here:

* events are split at blank lines (CR, LF or CRLF line ends); ``data`` lines are joined, other
  fields and ``:`` comments ignored; an event the body ends before finishing is dropped;
* ``[DONE]`` ends the stream; the rest of an HTTP/1.1 body is read, for 0.1 s at most, so the
  connection is used again;
* a payload that is not JSON raises ValueError; one with an ``error`` raises ``openai.APIError``
  with its message (or the library's default sentence) and the error as its body;
* a transport timeout raises ``openai.APITimeoutError``, another transport failure
  ``openai.APIConnectionError``.

Unlike the library, an event without data (a named keep-alive) is skipped instead of failing as
not JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import anyio
import httpx2
import openai

DRAIN_SECONDS = 0.1
_LINE_ENDS = (b"\n", b"\r")
_TRANSPORT_FAILURES = (httpx2.RequestError, ssl.SSLError, anyio.EndOfStream)


async def payloads(response: httpx2.Response) -> AsyncGenerator[Any, None]:
    """The JSON payload of each event until ``[DONE]`` or the end of the body (see the module docstring)."""
    chunks = response.aiter_bytes()
    pending = b""  # the start of a line whose end has not come yet
    data: list[bytes] = []
    try:
        async for chunk in chunks:
            if not chunk:
                continue
            lines = (pending + chunk).splitlines(keepends=True)
            last = lines[-1]
            # A line is whole once its end came; a CR alone may still be followed by the LF of a CRLF.
            pending = lines.pop() if not last.endswith(_LINE_ENDS) or last.endswith(b"\r") else b""
            for line in lines:
                line = line.rstrip(b"\r\n")
                if line:
                    if line.startswith(b"data:"):
                        value = line[5:]
                        data.append(value[1:] if value.startswith(b" ") else value)
                    continue
                if not data:
                    continue
                text, data = b"\n".join(data), []
                if text.startswith(b"[DONE]"):
                    await _drain(response, chunks)
                    return
                yield _payload(text, response)
    except httpx2.TimeoutException as exc:
        raise openai.APITimeoutError(request=response.request) from exc
    except _TRANSPORT_FAILURES as exc:
        raise openai.APIConnectionError(request=response.request) from exc


def _payload(text: bytes, response: httpx2.Response) -> Any:
    data = json.loads(text)
    if isinstance(data, dict) and data.get("error"):
        error = data["error"]
        message = error.get("message") if isinstance(error, dict) else None
        if not message or not isinstance(message, str):
            message = "An error occurred during streaming"
        raise openai.APIError(message=message, request=response.request, body=error)
    return data


async def _drain(response: httpx2.Response, chunks: AsyncIterator[bytes]) -> None:
    """Read what follows ``[DONE]`` (the body's end), briefly, so an HTTP/1.1 connection is kept."""
    if response.http_version != "HTTP/1.1":
        return
    with contextlib.suppress(TimeoutError, httpx2.StreamError, *_TRANSPORT_FAILURES):
        async with asyncio.timeout(DRAIN_SECONDS):
            async for _ in chunks:
                pass
