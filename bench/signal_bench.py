"""Benchmark of the Signal bot process, end to end over loopback HTTP and WebSocket.

The fake signal-cli-rest-api and the fake model (answering at once) run in a child process
together with the driver that plays the users; this process runs only the bot (the real
SignalAdapter on signalbot, the real Assistant, the real openai client), so its CPU and peak memory
are the bot's own. The store is the one people run, TinyDB in a data folder on disk (not tmpfs; the
header prints the folder's file system); ``--store memory`` measures without persistence.

The loads are the Telegram bench's: 1, 100 and 1,000 chats each sending its next message as soon
as its answer is finished (typing stopped), then 100 and 1,000 chats paced at 200 messages/s
over all chats. Printed per load: messages per second handled end to end, the added latency from
a message pushed on the WebSocket to the first ``/v2/send`` to that person (median and p99), and
how busy the bot's process and the fakes' process were; at the end the bot process's peak RSS
(``ru_maxrss``). A short warm-up runs first and is not counted.

Run: ``.venv/bin/python -m bench.signal_bench [--chats 1,100,1000] [--store tinydb|memory]``
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import resource
import tempfile
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.closed_loop import Clock, RunResult
from bench.datadir import describe, disk_folder
from bench.telegram_bench import LOADS, TURNS_PER_CONVERSATION, Load

WARM_UP = Load(5, 25)

# --- the child: fakes and the simulated users ---------------------------------------------------


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


def _servers_main(conn: Connection, loads: list[Load]) -> None:
    asyncio.run(_servers(conn, loads))


async def _servers(conn: Connection, loads: list[Load]) -> None:
    from tests.fakes.openai_server import FakeOpenAI
    from tests.fakes.signal_server import FakeSignalServer

    signal = FakeSignalServer(record=False)
    ai = FakeOpenAI(chunk_size=4096, record=False)
    await signal.start()
    await ai.start()
    conn.send((signal.service, signal.number, ai.base_url))
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, conn.recv)  # the bot is receiving
    await signal.wait_connected()

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
    for run, load in enumerate([WARM_UP, *loads]):
        sends.update(new=0, edit=0)
        start = time.perf_counter()
        cpu0 = time.process_time()
        latencies: list[float] = []
        per_chat = max(1, load.messages // load.chats)
        base = 10_000_000 * (run + 1)
        await asyncio.gather(
            *(_person(signal, load, base, slot, per_chat, start, latencies, clock) for slot in range(load.chats))
        )
        seconds = time.perf_counter() - start
        label = "warm-up" if run == 0 else load.label
        conn.send((label, per_chat * load.chats, seconds, latencies, time.process_time() - cpu0, dict(sends)))
        clock.clear()
        ai.clear()
    conn.send(None)
    await loop.run_in_executor(None, conn.recv)
    await ai.close()
    await signal.close()


# --- this process: the bot ----------------------------------------------------------------------


async def _bot(conn: Connection, store_kind: str) -> list[RunResult]:
    from bots.signal.process import SignalAdapter
    from core.app import assemble
    from core.llm import OpenAIModelClient
    from core.settings import Settings
    from core.store.memory import MemoryStore

    service, number, ai_url = conn.recv()
    with tempfile.TemporaryDirectory(dir=disk_folder(), prefix="ferry-bench-") as tmp:
        print(describe(store_kind, Path(tmp)), flush=True)
        settings = Settings(
            openai_base_url=ai_url,
            openai_api_key="bench",
            model="fake-model",
            signal_service=service,
            signal_phone_number=number,
            data_dir=Path(tmp),
            access="open",
            rate_per_minute=1_000_000,
            model_retries=0,
        )
        store: Any
        if store_kind == "tinydb":
            from core.store.tinydb_store import TinyDBStore

            store = TinyDBStore(Path(tmp))
        else:
            store = MemoryStore()
        assistant = assemble(settings, store, OpenAIModelClient(ai_url, "bench", max_retries=0))
        await assistant.start()
        adapter = SignalAdapter(assistant, service=service, phone_number=number)
        await adapter.start()
        results: list[RunResult] = []
        try:
            conn.send("ready")
            loop = asyncio.get_running_loop()
            cpu0 = time.process_time()
            while (result := await loop.run_in_executor(None, conn.recv)) is not None:
                label, messages, seconds, latencies, fake_cpu, sends = result
                bot_cpu = time.process_time() - cpu0
                cpu0 = time.process_time()
                if label == "warm-up":
                    print(f"warm-up: {messages} messages in {seconds:.2f} s (not counted)", flush=True)
                    continue
                results.append(RunResult(label, messages, seconds, latencies, fake_cpu, bot_cpu=bot_cpu))
                print(results[-1].line(), flush=True)
                print(
                    f"  Signal sends per answer: new messages {sends['new'] / messages:.2f},"
                    f" edits {sends['edit'] / messages:.2f}", flush=True,
                )  # fmt: skip
            conn.send("bye")
        finally:
            await adapter.stop()
            await assistant.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", help="comma-separated numbers of chats, each answered as fast as it can be")
    parser.add_argument("--store", choices=("tinydb", "memory"), default="tinydb")
    args = parser.parse_args()
    loads = [Load(int(c), max(200, 4 * int(c))) for c in args.chats.split(",")] if args.chats else LOADS
    logging.basicConfig(level=logging.ERROR)

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_servers_main, args=(child, loads), daemon=True)
    proc.start()
    print(f"fake signal-cli-rest-api and fake model in pid {proc.pid}, bot in this process")
    asyncio.run(_bot(parent, args.store))
    proc.join(10)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"bot process peak memory (ru_maxrss): {peak_mb:.1f} MB")


if __name__ == "__main__":
    main()
