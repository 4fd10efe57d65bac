"""Reading a streamed Chat Completions body: events, their end, and failures (core/sse.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai
import pytest

from core.sse import payloads


class Body(httpx2.AsyncByteStream):
    def __init__(self, *chunks: bytes, fail: Exception | None = None) -> None:
        self.chunks = chunks
        self.fail = fail

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.fail is not None:
            raise self.fail


def response(*chunks: bytes, fail: Exception | None = None) -> httpx2.Response:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    return httpx2.Response(200, stream=Body(*chunks, fail=fail), request=request)


async def read(*chunks: bytes, fail: Exception | None = None) -> list[Any]:
    return [p async for p in payloads(response(*chunks, fail=fail))]


async def test_events_split_anywhere_and_in_any_line_end_are_read_whole() -> None:
    assert await read(
        b'data: {"a": 1}\r', b"\n\r\n", b': a comment\n\ndata: {"b":', b" 2}\n\n",
        b'event: ping\n\ndata: {"c"\ndata: : 3}\r\rdata: {"d": 4}\n\ndata: [DONE]\n\n', b'data: {"e": 5}\n\n',
    ) == [{"a": 1}, {"b": 2}, {"c": 3}, {"d": 4}]  # fmt: skip


async def test_an_event_the_body_ends_before_finishing_is_dropped() -> None:
    assert await read(b'data: {"a": 1}\n\ndata: {"b": 2}\n') == [{"a": 1}]


async def test_an_error_payload_and_a_non_json_one_raise() -> None:
    with pytest.raises(openai.APIError, match="over quota") as caught:
        await read(b'data: {"a": 1}\n\ndata: {"error": {"message": "over quota", "code": "q"}}\n\n')
    assert caught.value.body == {"message": "over quota", "code": "q"}
    with pytest.raises(openai.APIError, match="An error occurred during streaming"):
        await read(b'data: {"error": "bad"}\n\n')
    with pytest.raises(ValueError):
        await read(b"data: not json\n\n")


async def test_transport_failures_become_the_librarys_errors() -> None:
    with pytest.raises(openai.APITimeoutError):
        await read(b'data: {"a": 1}\n\n', fail=httpx2.ReadTimeout("slow"))
    with pytest.raises(openai.APIConnectionError):
        await read(b'data: {"a": 1}\n\n', fail=httpx2.RemoteProtocolError("cut"))
