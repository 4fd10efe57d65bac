"""How fast the Signal process handles messages end to end, on loopback.

The real signalbot talks to the fake signal-cli-rest-api (WebSocket in, ``/v2/send`` out),
the real Assistant runs on the in-memory store, and the real openai client talks to the fake
model, which answers at once. Printed per level of concurrency (1, 100 and 1,000 chats):

* messages per second handled end to end (pushed on the WebSocket → final text delivered);
* the latency the process adds from a message pushed on the WebSocket to the first text sent
  back (median and p99);
* and, at the end, the process's peak memory (``ru_maxrss``).

Run: ``.venv/bin/python -m bench.signal_bench`` (``--chats 1 100 1000 --rounds 3``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field

from bots.signal_bot import SignalAdapter
from core.assistant import Assistant
from core.llm import OpenAIModelClient
from core.settings import Settings
from core.store.memory import MemoryStore
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.signal_server import FakeSignalServer


@dataclass
class Round:
    """Timings of one batch of messages, one per chat."""

    pushed: dict[str, float] = field(default_factory=dict)
    first_text: dict[str, float] = field(default_factory=dict)
    done: dict[str, float] = field(default_factory=dict)
    all_done: asyncio.Event = field(default_factory=asyncio.Event)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def bench(levels: list[int], rounds: int, min_messages: int = 50) -> None:
    async with FakeSignalServer(record=False) as signal_api, FakeOpenAI() as model_api:
        settings = Settings.from_values(
            {
                "FERRY_ACCESS": "open",
                "FERRY_MODEL": "gpt-4o-mini",
                "OPENAI_BASE_URL": model_api.base_url,
                "OPENAI_API_KEY": "sk-bench",
                "FERRY_RATE_PER_MINUTE": "100000",
            }
        )
        client = OpenAIModelClient(settings.openai_base_url, settings.openai_api_key, max_retries=0)
        assistant = Assistant(settings, MemoryStore(), client)
        await assistant.start()
        adapter = SignalAdapter(assistant, service=signal_api.service, phone_number=signal_api.number)
        await adapter.start()
        await signal_api.wait_connected()

        current = Round()

        def on_send(body: dict[str, object], _ts: int) -> None:
            recipients = body["recipients"]
            recipient = str(recipients[0]) if isinstance(recipients, list) and recipients else ""
            if recipient in current.pushed and recipient not in current.first_text:
                current.first_text[recipient] = time.perf_counter()

        def on_typing(action: str, recipient: str) -> None:
            if action == "stop" and recipient in current.pushed and recipient not in current.done:
                current.done[recipient] = time.perf_counter()
                if len(current.done) == len(current.pushed):
                    current.all_done.set()

        signal_api.on_send = on_send
        signal_api.on_typing = on_typing

        async def one_round(api: FakeSignalServer, people: list[str], text: str) -> Round:
            nonlocal current
            current = Round()
            for person in people:
                current.pushed[person] = time.perf_counter()
                await api.push_message(person, None, f"{text} from {person[:8]}")
            await asyncio.wait_for(current.all_done.wait(), timeout=600)
            return current

        # Warm up (tokenizer tables, connection pools) so the first level is not charged for it.
        await one_round(signal_api, [str(uuid.uuid4()) for _ in range(5)], "warm-up")

        print(f"{'chats':>6} {'messages':>9} {'msg/s':>9} {'first text p50':>15} {'p99':>9}")
        for chats in levels:
            people = [str(uuid.uuid4()) for _ in range(chats)]
            latencies: list[float] = []
            handled = 0
            elapsed = 0.0
            for n in range(max(rounds, -(-min_messages // chats))):
                start = time.perf_counter()
                done = await one_round(signal_api, people, f"question {n}")
                elapsed += time.perf_counter() - start
                handled += chats
                latencies += [done.first_text[p] - done.pushed[p] for p in people]
                model_api.clear()
            print(
                f"{chats:>6} {handled:>9} {handled / elapsed:>9.1f} "
                f"{statistics.median(latencies) * 1000:>12.1f} ms {percentile(latencies, 0.99) * 1000:>6.1f} ms"
            )

        await adapter.stop()
        await assistant.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_mb = peak / 1024 if sys.platform != "darwin" else peak / 1024 / 1024
    print(f"peak memory (ru_maxrss): {peak_mb:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--chats", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(bench(args.chats, args.rounds))


if __name__ == "__main__":
    main()
