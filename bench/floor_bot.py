"""The least a Telegram bot does for a message: the floor under issue 14's latencies on this machine.

``python -m bench.telegram_bench --bot stock|lean|raw`` runs this in place of ``ferry telegram``,
with the same fakes, load and columns. For each update of a ``getUpdates`` batch it does only what
no bot can skip: read the update, stream the model's answer to the person's message alone, show
it with one ``sendMessage``. No store, no history, no live drafts, no formatting, no retries, no
offset kept durable: nothing survives a restart and nothing is shown while the model writes.
``FLOOR_KIND`` says how:

* ``stock``: python-telegram-bot parses the update (``Update.de_json``) and the ``openai``
  library streams the answer as its documentation shows (``chat.completions.create(stream=True)``):
  a typical bot on Ferry's libraries, minus everything a bot does besides;
* ``lean``: the same parse, the answer through Ferry's own model client (``core/llm.py``: the
  library's HTTP client without its per-request plumbing): the least these libraries cost;
* ``raw``: ``json`` and ``aiohttp`` alone: what the interpreter and the event loop cost.

In a burst of 50 updates the 50th model request leaves after the CPU of the 49 turns before it,
whatever a bot does besides: these runs say how much of issue 14's latency is that queue.

Configured like ``ferry telegram``: ``TELEGRAM_BOT_TOKEN``, ``TELEGRAM_API_URL``,
``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``FERRY_MODEL``; on uvloop with the collector tuned as
``ferry telegram`` runs (``bots/loop.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiohttp
import openai
from telegram import Bot, Update

from bots.loop import loop_factory, tune_gc
from core.llm import Delta, OpenAIModelClient

KINDS = ("stock", "lean", "raw")
Answer = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]
Close = Callable[[], Awaitable[None]]


def _answerer(kind: str, http: aiohttp.ClientSession, api: str, model: str) -> tuple[Answer, Close]:
    """How one raw update is answered, and how to close what it uses."""
    base = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1").rstrip("/")
    bot = Bot(os.environ["TELEGRAM_BOT_TOKEN"])  # only what de_json needs; it makes no request

    async def send(chat_id: int, text: str) -> None:
        async with http.post(f"{api}/sendMessage", json={"chat_id": chat_id, "text": text}) as response:
            await response.read()

    if kind == "raw":

        async def raw(update: dict[str, Any]) -> None:
            message = update.get("message") or {}
            if "text" not in message:
                return
            body = {"model": model, "messages": [{"role": "user", "content": message["text"]}], "stream": True}
            parts = []
            async with http.post(f"{base}/chat/completions", json=body) as response:
                async for line in response.content:
                    if line.startswith(b"data: {"):
                        choices = json.loads(line[6:]).get("choices") or [{}]
                        parts.append(choices[0].get("delta", {}).get("content") or "")
            await send(message["chat"]["id"], "".join(parts))

        async def nothing() -> None:
            return None

        return raw, nothing

    if kind == "lean":
        client = OpenAIModelClient(base, os.environ.get("OPENAI_API_KEY"), max_retries=0)

        async def lean(update: dict[str, Any]) -> None:
            message = Update.de_json(update, bot).message
            if message is None or message.text is None:
                return
            events = client.stream(model, [{"role": "user", "content": message.text}])
            parts = [event.text async for event in events if isinstance(event, Delta)]
            await send(message.chat.id, "".join(parts))

        return lean, client.aclose

    ai = openai.AsyncOpenAI(base_url=base, max_retries=0)

    async def stock(update: dict[str, Any]) -> None:
        message = Update.de_json(update, bot).message
        if message is None or message.text is None:
            return
        stream = await ai.chat.completions.create(
            model=model, messages=[{"role": "user", "content": message.text}], stream=True
        )
        parts = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
        await send(message.chat.id, "".join(parts))

    return stock, ai.close


async def _run(kind: str) -> None:
    token = os.environ["TELEGRAM_BOT_TOKEN"]
    api = f"{os.environ.get('TELEGRAM_API_URL', 'https://api.telegram.org').rstrip('/')}/bot{token}"
    model = os.environ.get("FERRY_MODEL", "gpt-4o-mini")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    tasks: set[asyncio.Task[None]] = set()
    offset = 0
    async with aiohttp.ClientSession() as http:
        answer, close = _answerer(kind, http, api, model)
        stopping = asyncio.ensure_future(stop.wait())
        while not stop.is_set():
            poll = asyncio.ensure_future(http.post(f"{api}/getUpdates", json={"offset": offset, "timeout": 10}))
            await asyncio.wait([poll, stopping], return_when=asyncio.FIRST_COMPLETED)
            if not poll.done():
                poll.cancel()
                break
            async with poll.result() as response:
                batch: list[dict[str, Any]] = (await response.json())["result"]
            for update in batch:  # as Ferry's poller does: a task an update, started in order
                offset = max(offset, update["update_id"] + 1)
                task = asyncio.create_task(answer(update))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
        await close()


def main() -> None:
    kind = os.environ.get("FLOOR_KIND", "lean")
    if kind not in KINDS:
        raise SystemExit(f"FLOOR_KIND must be one of {', '.join(KINDS)}, not {kind!r}")
    _, factory = loop_factory("uvloop")
    tune_gc()
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_run(kind))


if __name__ == "__main__":
    main()
