"""A slow, deterministic OpenAI-compatible model for the kill harness.

Each chat request is answered with ``answer_for(tag)`` for the ``tag`` (``c<chat>m<n>``) found in
the last user message, streamed as Server-Sent Events in ``chunks`` pieces ``chunk_delay`` seconds
apart, so a SIGKILL lands while answers are half written (the wire format is the one
``tests/fakes/openai_server.py`` follows: ``chat.completion.chunk`` objects, a usage chunk when
``stream_options.include_usage`` is set, then ``data: [DONE]``). That fake's default echo streams
at once and cannot be paced per request, hence this small one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import Any

from aiohttp import web

TAG_RE = re.compile(r"\b(c\d+m\d+)\b")
FILLER = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima."


def answer_for(tag: str) -> str:
    """The one complete answer the person should see for the message tagged ``tag``."""
    return f"Answer {tag} ok: {FILLER}"


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


class SlowModel:
    """``async with SlowModel(chunks=6, chunk_delay=0.3) as model``; point ``OPENAI_BASE_URL`` at ``base_url``."""

    def __init__(self, *, chunks: int = 6, chunk_delay: float = 0.3) -> None:
        self.chunks = chunks
        self.chunk_delay = chunk_delay
        self.requests = 0
        self.streaming = 0
        """Answers being streamed right now."""
        self.asked: list[str] = []
        """The last user message of every chat request, in arrival order."""
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """What ``OPENAI_BASE_URL`` should be."""
        return f"http://127.0.0.1:{self.port}/v1"

    async def __aenter__(self) -> SlowModel:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests += 1
        last = _last_user_text(body.get("messages", []))
        self.asked.append(last)
        found = TAG_RE.findall(last)
        text = answer_for(found[-1]) if found else f"You said: {last}"
        model = str(body.get("model", "fake-model"))
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": "chatcmpl-slow", "object": "chat.completion", "created": 0, "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
                }
            )  # fmt: skip
        self.streaming += 1
        try:
            return await self._stream(request, body, text, model)
        finally:
            self.streaming -= 1

    async def _stream(self, request: web.Request, body: dict[str, Any], text: str, model: str) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        size = max(1, -(-len(text) // self.chunks))
        pieces = [text[i : i + size] for i in range(0, len(text), size)]

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            data = {
                "id": "chatcmpl-slow", "object": "chat.completion.chunk", "created": 0, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }  # fmt: skip
            return f"data: {json.dumps(data)}\n\n".encode()

        # The bot may be killed mid-stream: a broken pipe is the expected end then.
        with contextlib.suppress(ConnectionError, RuntimeError):
            await resp.write(chunk({"role": "assistant", "content": ""}))
            for piece in pieces:
                await asyncio.sleep(self.chunk_delay)
                await resp.write(chunk({"content": piece}))
            await resp.write(chunk({}, "stop"))
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
                data = {"id": "chatcmpl-slow", "object": "chat.completion.chunk", "created": 0, "model": model,
                        "choices": [], "usage": usage}  # fmt: skip
                await resp.write(f"data: {json.dumps(data)}\n\n".encode())
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        return resp
