"""Benchmark of voice notes and documents through ``ferry telegram`` (issue 15), over loopback HTTP.

The fake Bot API and the fake OpenAI server (transcribing and answering at once, so the figures
are Ferry's own time, not the provider's) run in a child process with the driver playing the
people; this process runs only the bot (real python-telegram-bot, the real Assistant, the real
openai client), so its peak memory is the bot's own.

Phases:

1. ``voice``: 20 chats each send voice notes of 30 s (60 KB of OGG/Opus), one after another;
   latency = from the update being available to the first text the person sees (the quoted
   transcript), median and p99.
2. ``pdf``: 20 chats each send a 20-page PDF with a question; latency to the first visible text
   (the cut note or the answer's first draft).
3. ``memory``: 10 chats send a 20 MB document each at the same moment; the bot process's peak
   RSS (``ru_maxrss``) before and after.

Run: ``.venv/bin/python -m bench.media_bench [--rounds 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import os
import resource
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.closed_loop import Clock, RunResult

VOICE_BYTES = 60_000  # 30 s of Telegram's OGG/Opus voice at ~16 kbit/s
CHATS = 20
BIG_DOCUMENTS = 10
BIG_SIZE = 20 * 1000 * 1000  # under the cloud Bot API's 20 MB download limit


def _pdf(pages: int, chars_per_page: int = 1800, padding: int = 0) -> bytes:
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    font_ref = writer._add_object(font)
    line = ("lorem ipsum dolor sit amet " * 100)[:chars_per_page]
    for _ in range(pages):
        page = writer.add_blank_page(612, 792)
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 10 Tf 20 720 Td ({line}) Tj ET".encode())
        page[NameObject("/Contents")] = writer._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font_ref})}
        )
    if padding:  # an embedded blob (as scans and fonts make PDFs big); never referenced by a page
        blob = DecodedStreamObject()
        blob.set_data(os.urandom(padding))
        writer._add_object(blob)
    out = __import__("io").BytesIO()
    writer.write(out)
    return out.getvalue()


def _servers_main(conn: Connection, rounds: int) -> None:
    asyncio.run(_servers(conn, rounds))


async def _servers(conn: Connection, rounds: int) -> None:
    from tests.fakes.openai_media import speech
    from tests.fakes.openai_server import FakeOpenAI
    from tests.fakes.telegram_server import Call, FakeTelegram

    tg = FakeTelegram()
    ai = FakeOpenAI(chunk_size=4096, record=False)
    await tg.start()
    await ai.start()
    conn.send((tg.root, ai.base_url, tg.token))
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, conn.recv)  # the bot is polling

    clock = Clock()
    finals: dict[int, int] = {}
    wanted: dict[int, int] = {}

    def on_call(call: Call) -> None:
        if call.method in ("sendMessageDraft", "sendMessage"):
            chat = int(call.params["chat_id"])
            if call.method == "sendMessage":
                finals[chat] = finals.get(chat, 0) + 1
            clock.output(chat, final=finals.get(chat, 0) >= wanted.get(chat, 1))

    tg.listeners.append(on_call)
    voice = speech("please remind me to call the plumber tomorrow morning at nine")
    voice += b"\0" * (VOICE_BYTES - len(voice))
    document = _pdf(20)

    async def person(chat: int, send: Any, messages_per_turn: int, latencies: list[float]) -> None:
        for _ in range(rounds):
            finals[chat] = 0
            wanted[chat] = messages_per_turn
            done = clock.push(chat)
            send(chat)
            await done.wait()
            latencies.append(clock.latency(chat))

    phases: list[tuple[str, Any, int, int]] = [
        ("voice note of 30 s, 20 chats", lambda c: tg.push_voice(c, voice, duration=30), 2, 1_000_000),
        ("20-page PDF, 20 chats", lambda c: tg.push_document(c, "report.pdf", document, caption="summarise"), 2,
         2_000_000),
    ]  # fmt: skip
    for label, send, per_turn, base in phases:
        start, cpu0 = time.perf_counter(), time.process_time()
        latencies: list[float] = []
        await asyncio.gather(*(person(base + i, send, per_turn, latencies) for i in range(CHATS)))
        conn.send((label, len(latencies), time.perf_counter() - start, latencies, time.process_time() - cpu0))
        tg.sent.clear()
        tg.calls.clear()

    big = _pdf(20, padding=BIG_SIZE - 60_000)
    start, cpu0 = time.perf_counter(), time.process_time()
    latencies = []
    clock.clear()

    async def one(chat: int) -> None:
        finals[chat] = 0
        wanted[chat] = 2
        done = clock.push(chat)
        tg.push_document(chat, "big.pdf", big, caption="what is this about?")
        await done.wait()
        latencies.append(clock.latency(chat))

    await asyncio.gather(*(one(3_000_000 + i) for i in range(BIG_DOCUMENTS)))
    label = f"{BIG_DOCUMENTS} concurrent {len(big) / 1e6:.0f} MB PDFs"
    conn.send((label, len(latencies), time.perf_counter() - start, latencies, time.process_time() - cpu0))
    conn.send(None)
    await loop.run_in_executor(None, conn.recv)
    await ai.close()
    await tg.stop()


async def _bot(conn: Connection) -> None:
    from bots.telegram.process import build_application, polling
    from core.app import assemble
    from core.llm import OpenAIModelClient
    from core.settings import Settings
    from core.store.memory import MemoryStore

    root, ai_url, token = conn.recv()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            openai_base_url=ai_url, openai_api_key="bench", model="gpt-4o-mini", telegram_bot_token=token,
            data_dir=Path(tmp), access="open", rate_per_minute=1_000_000, model_retries=0,
        )  # fmt: skip
        assistant = assemble(settings, MemoryStore(), OpenAIModelClient(ai_url, "bench", max_retries=0))
        await assistant.start()
        app = build_application(assistant, token, root)
        async with polling(app, poll_timeout=10):
            conn.send("ready")
            loop = asyncio.get_running_loop()
            cpu0 = time.process_time()
            while (result := await loop.run_in_executor(None, conn.recv)) is not None:
                label, messages, seconds, latencies, fake_cpu = result
                line = RunResult(label, messages, seconds, latencies, fake_cpu, bot_cpu=time.process_time() - cpu0)
                cpu0 = time.process_time()
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                print(f"{line.line()}  bot peak RSS so far {peak:.0f} MB", flush=True)
        conn.send("bye")
        await assistant.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="messages each chat sends per phase")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_servers_main, args=(child, args.rounds), daemon=True)
    proc.start()
    print(f"fake Bot API, fake OpenAI and the people in pid {proc.pid}; the bot in this process")
    asyncio.run(_bot(parent))
    proc.join(10)


if __name__ == "__main__":
    main()
