"""Benchmark of ``ferry signal`` as a user runs it, end to end over loopback HTTP and WebSocket.

The bot is the installed ``ferry signal`` command in a process of its own, configured through the
environment as a user configures it: the default store (TinyDB in a data folder on disk, not tmpfs:
the header prints the folder's file system; ``--data-parent /dev/shm`` measures without the disk's
flushes), log lines at INFO to a file. This process runs the fake signal-cli-rest-api, the fake
model (answering at once) and the people.

The loads are the Telegram bench's: 1, 100 and 1,000 chats each sending its next message as soon
as its answer is finished (typing stopped), then 100 and 1,000 chats paced at 200 messages/s over
all chats. Printed per load: messages per second handled end to end; the added latency from a
message pushed on the WebSocket to the first ``/v2/send`` to that person (median and p99); the bot
process's CPU (from /proc, per answer) and peak RSS (``VmHWM``, reset before each run), and this
process's CPU; what the people's phones received per answer (new messages, edits). A short warm-up
runs first and is not counted.

Run: ``.venv/bin/python -m bench.signal_bench [--chats 1,100,1000] [--data-parent DIR]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.closed_loop import Clock, RunResult
from bench.datadir import describe, disk_folder
from bench.telegram_bench import LOADS, TURNS_PER_CONVERSATION, BotProcess, Load, event_loop_line, ferry_environment

WARM_UP = Load(5, 25)


async def _person(
    signal: Any, load: Load, base: int, slot: int, rounds: int, start: float, latencies: list[float], clock: Clock
) -> None:
    """One person writing ``rounds`` messages, each after the previous one was answered."""
    for k in range(rounds):
        if load.rate is not None:
            await asyncio.sleep(max(0.0, start + (k * load.chats + slot) / load.rate - time.perf_counter()))
        # Conversations stay short, as people's do; the core's cost grows with history.
        person = str(uuid.UUID(int=base + slot + load.chats * (k // TURNS_PER_CONVERSATION)))
        done = clock.push(person)
        await signal.push_message(person, None, f"message {k} from {person[-8:]}")
        await done.wait()
        latencies.append(clock.latency(person))


async def bench(loads: list[Load], data_parent: Path) -> None:
    from tests.fakes.openai_server import FakeOpenAI
    from tests.fakes.signal_server import FakeSignalServer

    signal = FakeSignalServer(record=False)
    ai = FakeOpenAI(chunk_size=4096, record=False)
    await signal.start()
    await ai.start()
    clock = Clock()
    sends = {"new": 0, "edit": 0}  # what the people's phones received, per run

    def on_send(body: dict[str, Any], _ts: int) -> None:
        sends["edit" if "edit_timestamp" in body else "new"] += 1
        recipients = body.get("recipients")
        if isinstance(recipients, list) and recipients:
            clock.output(str(recipients[0]))

    def on_typing(action: str, recipient: str) -> None:
        if action == "stop":
            clock.finished(recipient)

    signal.on_send = on_send
    signal.on_typing = on_typing
    with tempfile.TemporaryDirectory(dir=data_parent, prefix="ferry-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        print(describe("tinydb", Path(tmp)))
        print(event_loop_line())
        print(f"model: fake OpenAI-compatible server answering at once; load: {os.getloadavg()}")
        env = ferry_environment(ai.base_url, data_dir, SIGNAL_SERVICE=signal.service, SIGNAL_PHONE_NUMBER=signal.number)
        bot = BotProcess(env, Path(tmp) / "bot.log", "signal")
        print(f"bot: `ferry signal` in pid {bot.pid}; fake signal-cli-rest-api, model and people in pid {os.getpid()}")
        try:
            await asyncio.wait_for(signal.wait_connected(), 60)
            for run, load in enumerate([WARM_UP, *loads]):
                sends.update(new=0, edit=0)
                per_chat = max(1, load.messages // load.chats)
                base = 10_000_000 * (run + 1)
                latencies: list[float] = []
                bot.reset_peak()
                bot_cpu0, cpu0, start = bot.cpu(), time.process_time(), time.perf_counter()
                await asyncio.gather(
                    *(_person(signal, load, base, i, per_chat, start, latencies, clock) for i in range(load.chats))
                )
                seconds = time.perf_counter() - start
                messages = per_chat * load.chats
                clock.clear()
                ai.clear()
                if run == 0:
                    print(f"warm-up: {messages} messages in {seconds:.2f} s (not counted)", flush=True)
                    continue
                bot_cpu = bot.cpu() - bot_cpu0
                result = RunResult(load.label, messages, seconds, latencies, time.process_time() - cpu0, bot_cpu)
                print(result.line(), flush=True)
                print(
                    f"  bot CPU {bot_cpu / messages * 1000:.1f} ms an answer, peak RSS {bot.peak_mb():.1f} MB;"
                    f" Signal sends per answer: new messages {sends['new'] / messages:.2f},"
                    f" edits {sends['edit'] / messages:.2f}", flush=True,
                )  # fmt: skip
        finally:
            bot.finish()
    await ai.close()
    await signal.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", help="comma-separated numbers of chats, each answered as fast as it can be")
    parser.add_argument("--data-parent", type=Path, default=None, help="where the data folder goes (default: on disk)")
    args = parser.parse_args()
    loads = [Load(int(c), max(200, 4 * int(c))) for c in args.chats.split(",")] if args.chats else LOADS
    asyncio.run(bench(loads, args.data_parent or disk_folder()))


if __name__ == "__main__":
    main()
