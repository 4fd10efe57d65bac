"""Benchmark of voice notes and documents through ``ferry telegram`` (issue 15), as people run it.

The installed ``ferry telegram`` runs as a child process with the default store (TinyDB in a fresh
data folder on disk, not tmpfs) and reaches the fake Bot API and the fake OpenAI server in this
process on 127.0.0.1; this process also plays the people. The header prints the configuration.

Phases:

1. ``voice``: 20 chats each send voice notes of 30 s (60 KB of OGG/Opus), one after another.
2. ``pdf``: 20 chats each send a 20-page PDF with a question. The model answers each with a
   summary of about 700 characters (:data:`SUMMARY`), one message, as a model asked to summarise
   does; its default echo of the whole question (the document's 15,000 characters) would be four
   messages, and the next document was sent after the first of them, so the rest of that answer
   (sent at the global rate) stood for the next document's first visible text.

For each message, Ferry's own time is from the update being available in ``getUpdates`` to the
first text the person sees (``sendMessage`` or ``sendMessageDraft``, Telegram's "thinking" draft
included) *minus* the time a provider request of that chat was in the fake OpenAI server (its own
timestamps: from the request read to the response written), so the provider's transcription and
answer time are excluded. Median and p99 are printed, and the same for the first words (the quoted
transcript, the cut note: a message or a draft with text), the wait from the update to the bot
asking for its file (``getFile``), and to the bot's ``getUpdates`` call that carries it.

3. ``memory``: a fresh ``ferry telegram`` process; 10 chats send a 20 MB document each at the same
   moment; the process's peak RSS (``VmHWM`` in ``/proc/PID/status``) before and after.
4. ``readers`` (not run by default): in this process, the 20 PDFs read as the bot reads them (a
   worker thread each, 1 or 2 at once; with the bot's 1 ms GIL switch interval, and 1 at once
   with Python's 5 ms) while the event loop ticks every millisecond: the wall and CPU time of
   the reading and how late the loop's ticks come (the GIL the readers hold).

Run: ``.venv/bin/python -m bench.media_bench [--rounds 10] [--send-rate 30]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.closed_loop import Clock
from bench.datadir import describe, disk_folder

VOICE_BYTES = 60_000  # 30 s of Telegram's OGG/Opus voice at ~16 kbit/s
CHATS = 20
BIG_DOCUMENTS = 10
BIG_SIZE = 20 * 1000 * 1000  # under the cloud Bot API's 20 MB download limit
TAG = re.compile(rb"bench chat (\d+)")
SUMMARY = "The report, in short:\n\n" + "\n".join(
    f"- **Point {i}:** lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod." for i in range(7)
)
"""The model's answer to a document: a summary, one Telegram message."""


def _pdf(pages: int, marker: str, chars_per_page: int = 1800, padding: int = 0) -> bytes:
    from tests.media.conftest import pdf

    line = (f"{marker} " + "lorem ipsum dolor sit amet " * 100)[:chars_per_page]
    return pdf([line] * pages, padding=padding)


def _timed_openai(busy: dict[int, list[tuple[float, float]]]) -> Any:
    """The fake OpenAI server, noting per chat when each request was in it (read → answered)."""
    from aiohttp import web

    from tests.fakes.openai_server import FakeOpenAI

    @web.middleware
    async def timing(request: web.Request, handler: Any) -> web.StreamResponse:
        # A chat request names the chat; a transcription's answer does (its multipart body is
        # read by the handler from the stream, so it is not read here).
        chat = request.path.endswith("/chat/completions")
        body = await request.read() if chat else b""  # kept by aiohttp for the handler
        start = time.perf_counter()
        response: web.StreamResponse = await handler(request)
        answer = getattr(response, "body", None)
        found = TAG.search(body) or (TAG.search(answer) if isinstance(answer, bytes) else None)
        if found is not None:
            busy[int(found.group(1))].append((start, time.perf_counter()))
        return response

    ai = FakeOpenAI(chunk_size=4096, record=False)
    ai.middlewares.append(timing)
    return ai


def own_time(pushed: float, shown: float, busy: list[tuple[float, float]]) -> float:
    """``shown - pushed`` less the time within it that a provider request was being served."""
    spans = sorted((max(a, pushed), min(b, shown)) for a, b in busy if b > pushed and a < shown)
    provider, reach = 0.0, pushed
    for a, b in spans:
        a = max(a, reach)
        if b > a:
            provider += b - a
            reach = b
    return shown - pushed - provider


def _ms(values: list[float], q: float) -> float:
    v = sorted(values)
    return (statistics.median(v) if q == 0.5 else v[min(len(v) - 1, int(len(v) * q))]) * 1000


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> tuple[float, float]:
    """(RSS now, peak RSS) of a process, in MB."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (the document readers)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


async def _read_ticking(pdfs: list[bytes], threads: int, shared: bool = True) -> tuple[float, float, list[float]]:
    """Read ``pdfs`` as the bot does, ``threads`` at a time, while the loop ticks every 1 ms:
    (wall seconds, CPU seconds, how late each tick came); ``shared``: with the GIL's switch
    interval the bot runs with (:data:`bots.cli.SWITCH_INTERVAL`), else Python's default."""
    from bots.cli import SWITCH_INTERVAL
    from core.media.documents import extract

    late: list[float] = []
    reading = asyncio.Semaphore(threads)
    done = asyncio.Event()

    async def tick() -> None:
        while not done.is_set():
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            late.append(time.perf_counter() - start - 0.001)

    async def read(data: bytes) -> None:
        async with reading:
            await asyncio.to_thread(extract, "pdf", data, 15_000)

    ticks = asyncio.create_task(tick())
    wall, cpu = time.perf_counter(), time.process_time()
    before = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL if shared else 0.005)
    try:
        await asyncio.gather(*(read(data) for data in pdfs))
    finally:
        sys.setswitchinterval(before)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    done.set()
    await ticks
    return wall, cpu, late


async def readers_phase(rounds: int = 2) -> None:
    """How reading 20 PDFs in 1 or 2 worker threads delays the event loop (see the docstring)."""
    pdfs = [_pdf(20, f"bench chat {i}") for i in range(CHATS)]
    await _read_ticking(pdfs[:1], 1)  # pypdf imported
    for threads, shared in ((2, True), (1, True), (1, False)) * rounds:
        wall, cpu, late = await _read_ticking(pdfs, threads, shared)
        interval = "1 ms switch interval" if shared else "Python's 5 ms"
        print(
            f"{CHATS} PDFs read {threads} at a time ({interval}): {wall * 1000:.0f} ms, CPU {cpu * 1000:.0f} ms "
            f"(the ticks' own included); the loop's 1 ms ticks late by median {_ms(late, 0.5):.1f} ms, p99 "
            f"{_ms(late, 0.99):.1f} ms, at most {max(late) * 1000:.1f} ms ({_load()})",
            flush=True,
        )


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


class Bench:
    """The fakes, the people and one ``ferry telegram`` process at a time."""

    def __init__(self, args: argparse.Namespace, data_root: Path) -> None:
        from tests.fakes.telegram_server import FakeTelegram

        self.args = args
        self.data_root = data_root
        self.tg = FakeTelegram()
        self.busy: dict[int, list[tuple[float, float]]] = defaultdict(list)
        self.ai = _timed_openai(self.busy)
        self.clock = Clock()
        self.to_fetch: list[float] = []  # update available -> the bot asks for its file (getFile)
        self.to_poll: list[float] = []  # update available -> the bot's getUpdates that carries it
        self.unpolled: set[int] = set()  # chats whose update no getUpdates answer carried yet
        self.words: list[float] = []  # Ferry's own time to the first words (not a "thinking" draft)
        self.finals: dict[int, int] = {}
        self.file_chat: dict[str, int] = {}  # file_id -> chat, to see when the bot asked for it
        self.fetched_at: dict[int, float] = {}
        self.words_at: dict[int, float] = {}  # the first message or draft with words in it
        self.wanted: dict[int, int] = {}
        self.strays = 0

    def env(self, data_dir: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FERRY_", "TELEGRAM_", "SIGNAL_", "OPENAI_"))}
        env.update(
            TELEGRAM_BOT_TOKEN=self.tg.token, TELEGRAM_API_URL=self.tg.root, OPENAI_BASE_URL=self.ai.base_url,
            OPENAI_API_KEY="sk-bench", FERRY_MODEL="fake-model", FERRY_DATA_DIR=str(data_dir), FERRY_ACCESS="open",
            FERRY_RATE_PER_MINUTE="1000000", FERRY_MODEL_RETRIES="0", FERRY_LOG_LEVEL="WARNING",
            FERRY_TELEGRAM_SEND_RATE=f"{self.args.send_rate:g}", PYTHONUNBUFFERED="1",
        )  # fmt: skip
        return env

    def push_pdf(self, chat: int, data: bytes) -> object:
        """A PDF with a question, its answer (the summary) queued at the fake model."""
        self.ai.enqueue(SUMMARY)
        return self.tg.push_document(chat, f"report-{chat}.pdf", data, caption="summarise")

    def on_call(self, call: Any) -> None:
        if call.method == "getUpdates":  # its answer carries every update pushed before this
            for chat in self.unpolled:
                self.to_poll.append(max(0.0, call.at - self.clock.pushed_at[chat]))  # call.at: it came
            self.unpolled.clear()
        if call.method == "getFile" and call.params.get("file_id") in self.file_chat:
            self.fetched_at.setdefault(self.file_chat[call.params["file_id"]], time.perf_counter())
        if call.method in ("sendMessageDraft", "sendMessage"):
            chat = int(call.params["chat_id"])
            if call.method == "sendMessage" or call.params.get("text"):
                self.words_at.setdefault(chat, time.perf_counter())
            if call.method == "sendMessage":
                self.finals[chat] = self.finals.get(chat, 0) + 1
                if self.finals[chat] > self.wanted.get(chat, 1):
                    self.strays += 1  # more than the turn's messages: the next turn would see them
            self.clock.output(chat, final=self.finals.get(chat, 0) >= self.wanted.get(chat, 1))

    async def turn(self, chat: int, send: Callable[[int], object], messages: int, out: list[float]) -> None:
        """One message of ``chat``, waited for until ``messages`` messages were sent back."""
        self.finals[chat] = 0
        self.wanted[chat] = messages
        self.busy[chat].clear()
        self.fetched_at.pop(chat, None)
        self.words_at.pop(chat, None)
        done = self.clock.push(chat)
        msg = send(chat)
        self.unpolled.add(chat)
        media = (msg.get("voice") or msg.get("document") or {}) if isinstance(msg, dict) else {}
        if "file_id" in media:
            self.file_chat[media["file_id"]] = chat
        await asyncio.wait_for(done.wait(), 120)
        pushed = self.clock.pushed_at[chat]
        out.append(own_time(pushed, self.clock.first_at[chat], self.busy[chat]))
        self.words.append(own_time(pushed, self.words_at[chat], self.busy[chat]))
        if chat in self.fetched_at:
            self.to_fetch.append(self.fetched_at[chat] - pushed)

    async def person(self, chat: int, send: Callable[[int], object], messages: int, out: list[float]) -> None:
        """One person sending ``--rounds`` messages, each once the previous one is answered."""
        for _ in range(self.args.rounds):
            await self.turn(chat, send, messages, out)

    async def started(self, name: str) -> Any:
        from tests.reliability.harness import BotProcess

        data_dir = self.data_root / name
        bot = BotProcess("telegram", self.env(data_dir), self.data_root / f"{name}.log")
        await bot.start()
        deadline = time.monotonic() + 60
        while not any(c.method == "getUpdates" and c.at > bot.started_at for c in self.tg.calls[-20:]):
            if time.monotonic() > deadline or (bot.proc is not None and bot.proc.returncode is not None):
                raise RuntimeError(f"ferry telegram did not start; see {self.data_root / f'{name}.log'}")
            await asyncio.sleep(0.05)
        return bot

    async def latency_phases(self) -> None:
        from tests.fakes.openai_media import speech

        rounds = self.args.rounds
        voices = {}
        for i in range(CHATS):
            chat = 1_000_000 + i
            v = speech(f"please remind me to call the plumber tomorrow morning at nine, bench chat {chat}")
            voices[chat] = v + b"\0" * (VOICE_BYTES - len(v))
        pdfs = {2_000_000 + i: _pdf(20, f"bench chat {2_000_000 + i}") for i in range(CHATS)}
        phases: list[tuple[str, str, Callable[[int], object], int]] = [
            ("voice", "voice note of 30 s", lambda c: self.tg.push_voice(c, voices[c], duration=30), 2),
            ("pdf", "20-page PDF + question", lambda c: self.push_pdf(c, pdfs[c]), 2),
        ]  # fmt: skip
        bot = await self.started("latency")
        try:
            for (name, label, send, per_turn), base in zip(phases, (1_000_000, 2_000_000), strict=True):
                if name not in self.args.phases:
                    continue
                own: list[float] = []
                self.to_fetch.clear()
                self.to_poll.clear()
                self.words.clear()
                cpu0, start = _cpu_seconds(bot.proc.pid), time.perf_counter()
                await asyncio.gather(*(self.person(base + i, send, per_turn, own) for i in range(CHATS)))
                seconds = time.perf_counter() - start
                used = _cpu_seconds(bot.proc.pid) - cpu0
                print(
                    f"{label:<24} {CHATS} chats x {rounds}: Ferry's own time to first visible text "
                    f"median {_ms(own, 0.5):6.1f} ms  p99 {_ms(own, 0.99):6.1f} ms  (n={len(own)}; bot CPU "
                    f"{used / seconds:4.0%}, {used / len(own) * 1000:.0f} ms a message; {_load()})",
                    flush=True,
                )
                print(
                    f"{'':<24} to the first words (transcript, cut note; not the 'thinking' draft) median "
                    f"{_ms(self.words, 0.5):6.1f} ms  p99 {_ms(self.words, 0.99):6.1f} ms; update -> getFile "
                    f"median {_ms(self.to_fetch, 0.5):5.1f} ms  p99 {_ms(self.to_fetch, 0.99):5.1f} ms; update "
                    f"-> the bot's getUpdates carrying it median {_ms(self.to_poll, 0.5):5.1f} ms  p99 "
                    f"{_ms(self.to_poll, 0.99):5.1f} ms",
                    flush=True,
                )
                if self.strays:
                    print(f"{'':<24} WARNING: {self.strays} messages came after their turn was taken as answered")
                    self.strays = 0
                self.tg.sent.clear()
                self.tg.calls.clear()
        finally:
            await bot.stop()

    async def memory_phase(self) -> None:
        big = _pdf(20, "big document", padding=BIG_SIZE - 60_000)
        bot = await self.started("memory")
        try:
            await asyncio.sleep(1.0)  # settled after start-up
            idle, _ = _peak_rss_mb(bot.proc.pid)
            own: list[float] = []

            def send(chat: int) -> None:
                self.ai.enqueue(SUMMARY)
                self.tg.push_document(chat, f"big-{chat}.pdf", big, caption="what is this about?")

            await asyncio.gather(*(self.turn(3_000_000 + i, send, 2, own) for i in range(BIG_DOCUMENTS)))
            now, peak = _peak_rss_mb(bot.proc.pid)
            helpers = [_peak_rss_mb(pid)[1] for pid in _children(bot.proc.pid)]
            print(
                f"{BIG_DOCUMENTS} concurrent {len(big) / 1e6:.0f} MB PDFs: peak RSS {peak:.0f} MB "
                f"(idle before {idle:.0f} MB, after {now:.0f} MB); child processes: "
                f"{' + '.join(f'{h:.0f} MB' for h in helpers) or 'none'}; first visible text p99 "
                f"{_ms(own, 0.99):.0f} ms ({_load()})",
                flush=True,
            )
        finally:
            await bot.stop()

    async def run(self) -> None:
        from tests.reliability.harness import ferry_command

        await self.tg.start()
        await self.ai.start()
        self.tg.listeners.append(self.on_call)
        try:
            command = " ".join(ferry_command())
            print(f"bot: {command} telegram (a child process); fakes on 127.0.0.1 in pid {os.getpid()}")
            print(describe("tinydb", self.data_root))
            print(
                f"FERRY_TELEGRAM_SEND_RATE={self.args.send_rate:g}  FERRY_RATE_PER_MINUTE=1000000  "
                f"FERRY_MODEL_RETRIES=0  model: fake, answers and transcribes at once; {_load()}",
                flush=True,
            )
            if "voice" in self.args.phases or "pdf" in self.args.phases:
                await self.latency_phases()
            if "memory" in self.args.phases:
                await self.memory_phase()
        except BaseException:
            for log in sorted(self.data_root.glob("*.log")):
                print(f"--- the end of {log.name}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:]))
            raise
        finally:
            await self.ai.close()
            await self.tg.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=10, help="messages each chat sends per phase")
    parser.add_argument(
        "--phases", default="voice,pdf,memory", help="comma-separated: voice, pdf, memory; or readers alone"
    )
    parser.add_argument(
        "--send-rate", type=float, default=30.0,
        help="FERRY_TELEGRAM_SEND_RATE (30, Telegram's limit, as users run it)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.phases == "readers":
        asyncio.run(readers_phase())
        return
    with tempfile.TemporaryDirectory(dir=disk_folder(), prefix="ferry-media-bench-") as tmp:
        asyncio.run(Bench(args, Path(tmp)).run())


if __name__ == "__main__":
    main()
