"""Benchmark of ``ferry telegram`` as a user runs it, end to end over loopback HTTP.

The bot is the installed ``ferry telegram`` command in a process of its own, configured through
the environment as a user configures it: the default store (TinyDB in a data folder on disk, not
tmpfs: the header prints the folder's file system), log lines at INFO to a file, Telegram's send
rate unless ``--send-rate`` lifts it. This process runs the fake Bot API, the fake model and the
load generator that plays the people.

Each of N private chats sends a message, waits for the bot's final ``sendMessage`` and sends the
next (a closed loop). The first two runs are the table of issue 14, 50 chats × 4 messages: a
model that answers at once, and a model streaming 6 pieces 200 ms apart (1,200 ms alone).
``--runs steady`` is the same streaming model at a steady load below saturation (100 chats, 50
messages a second, each person sending on a schedule): the latencies the bot itself adds when
it is not behind a burst's queue.

Every moment is taken in this process, where it happens: the message queued in the fake Bot API,
its update leaving in a ``getUpdates`` answer, the model request arriving, each piece written by
the fake model, the first draft or message and the final ``sendMessage`` arriving. Columns:

* answers/s;
* final answer after the message, median and p99;
* first visible text after the message, median (a placeholder counts); the first text of the
  model's after its first piece was written, p99;
* the model request after the update left the fake Bot API, median and p99;
* the final message after the model's last piece was written, median and p99;
* the bot process's CPU use and peak RSS during the run (``VmHWM``, reset before each run).

``--strace`` counts the bot's files written (renames) and flushes (fsync, syncfs) per answer
with ``strace -f -c`` (it slows the bot: read its figures for the counts, not the times).

``--profile FILE`` records the bot process with py-spy (``pip install py-spy``) during the runs,
as collapsed stacks of the thread holding the GIL, that is where its Python CPU time goes
(``--format raw --gil``; feed them to a flame graph tool).

``--bot stock|lean|raw`` runs ``bench/floor_bot.py`` in place of ``ferry telegram``: a bot that
only parses each update, streams the model's answer and sends it once (no store, no history, no
drafts), on stock ``openai``, on Ferry's lean model client, or on ``json`` and ``aiohttp`` alone.
Its figures are the floor under Ferry's on this machine: in a burst, the last request waits for
the CPU of every turn before it, whatever the bot.

Run: ``.venv/bin/python -m bench.telegram_bench [--runs table|steady|all] [--chats 1,100,1000]
[--send-rate 1000] [--data-parent DIR] [--profile FILE] [--bot ferry|stock|lean|raw]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.datadir import describe, disk_folder
from bench.floor_bot import KINDS as FLOOR_KINDS

TURNS_PER_CONVERSATION = 10  # then the simulated person is replaced by a new one (fresh history)
PIECES = 6
MOMENTS = ("pushed", "update_left", "request", "first_piece", "last_piece", "first_text", "first_model_text", "final")
MODEL_TEXT = "piece"  # what the fake model says; a draft without it is the bot's placeholder


@dataclass(frozen=True)
class Load:
    """One run: ``chats`` people; ``rate`` None means each sends again as soon as answered."""

    chats: int
    messages: int
    rate: float | None = None  # messages per second over all chats (a steady, paced load)
    piece_delay: float = 0.0  # the fake model sends PIECES pieces, each this many seconds apart

    @property
    def label(self) -> str:
        model = f"{PIECES} pieces x {self.piece_delay * 1000:g} ms" if self.piece_delay else "answers at once"
        pace = "as fast as answered" if self.rate is None else f"paced at {self.rate:g} msg/s"
        return f"{self.chats} chats x {self.messages // self.chats}, model {model}, {pace}"


TABLE = [Load(50, 200), Load(50, 200, piece_delay=0.2)]
# Issue 14's latencies at a steady load with answers streaming (200 ms a piece), not a burst: 100
# chats, 50 messages a second, about 60 answers streaming at any moment.
STEADY = [Load(100, 2000, rate=50.0, piece_delay=0.2)]
LOADS = [
    *TABLE,
    Load(1, 200),
    Load(100, 2000),
    Load(1000, 4000),
    # The added latency at a steady load below saturation: the bot's own delay, not a queue's.
    Load(100, 2000, rate=100.0),
    *STEADY,
]


class Clock:
    """The moments of each chat's current message (see MOMENTS), taken in this process."""

    def __init__(self) -> None:
        self.at: dict[str, dict[Hashable, float]] = {m: {} for m in MOMENTS}
        self.done: dict[Hashable, asyncio.Event] = {}

    def push(self, key: Hashable) -> asyncio.Event:
        for times in self.at.values():
            times.pop(key, None)
        self.done[key] = asyncio.Event()
        self.at["pushed"][key] = time.perf_counter()
        return self.done[key]

    def first(self, moment: str, key: Hashable) -> None:
        """Note ``moment`` for ``key``'s current message unless already seen."""
        if key in self.at["pushed"]:
            self.at[moment].setdefault(key, time.perf_counter())

    def last(self, moment: str, key: Hashable) -> None:
        if key in self.at["pushed"]:
            self.at[moment][key] = time.perf_counter()

    def output(self, key: Hashable, text: str, final: bool) -> None:
        self.first("first_text", key)
        if MODEL_TEXT in text:
            self.first("first_model_text", key)
        if final:
            self.first("final", key)
            if key in self.done:
                self.done[key].set()

    def figures(self, key: Hashable) -> dict[str, float]:
        """Issue 14's per-message figures, those whose moments were all seen."""
        spans = {
            "final": ("pushed", "final"),
            "first_text": ("pushed", "first_text"),
            "text_after_token": ("first_piece", "first_model_text"),
            "request_after_update": ("update_left", "request"),
            "final_after_last": ("last_piece", "final"),
        }
        out = {}
        for name, (start, end) in spans.items():
            if key in self.at[start] and key in self.at[end]:
                out[name] = self.at[end][key] - self.at[start][key]
        return out

    def clear(self) -> None:
        for times in self.at.values():
            times.clear()
        self.done.clear()


@dataclass
class RunResult:
    label: str
    messages: int
    seconds: float
    figures: dict[str, list[float]] = field(default_factory=dict)
    bot_cpu: float = 0.0  # CPU seconds of the bot process
    bot_peak_mb: float = 0.0
    calls: dict[str, int] = field(default_factory=dict)  # Bot API calls of the run, by method

    def line(self) -> str:
        def ms(name: str, q: float) -> str:
            values = sorted(self.figures.get(name, []))
            if not values:
                return "    -"
            at = statistics.median(values) if q == 0.5 else values[min(len(values) - 1, int(len(values) * q))]
            return f"{at * 1000:5.0f}"

        return (
            f"{self.label}\n"
            f"  {self.messages / self.seconds:6.1f} answers/s"
            f" | final median {ms('final', 0.5)} p99 {ms('final', 0.99)} ms"
            f" | first text median {ms('first_text', 0.5)} ms, after 1st piece p99 {ms('text_after_token', 0.99)} ms"
            f" | request after update median {ms('request_after_update', 0.5)}"
            f" p99 {ms('request_after_update', 0.99)} ms"
            f" | final after last piece median {ms('final_after_last', 0.5)} p99 {ms('final_after_last', 0.99)} ms"
            f" | bot CPU {self.bot_cpu / self.seconds:4.0%} ({self.bot_cpu / self.messages * 1000:.1f} ms an answer)"
            f", peak RSS {self.bot_peak_mb:5.1f} MB\n"
            f"  Bot API calls per answer: "
            + ", ".join(f"{m} {n / self.messages:.2f}" for m, n in sorted(self.calls.items()) if m != "getUpdates")
        )


# --- the fakes, timed ------------------------------------------------------------------------------


def _chat_of_request(body: Any) -> int | None:
    messages = body.get("messages") if isinstance(body, dict) else None
    last = str(messages[-1].get("content", "")) if isinstance(messages, list) and messages else ""
    found = re.search(r"message \d+ from (\d+)", last)
    return int(found.group(1)) if found else None


def _fakes(clock: Clock) -> tuple[Any, Any]:
    from tests.fakes.openai_server import FakeOpenAI, Reply
    from tests.fakes.telegram_server import FakeTelegram

    class TimedTelegram(FakeTelegram):
        async def _m_getUpdates(self, p: dict[str, Any]) -> list[dict[str, Any]]:
            result = await super()._m_getUpdates(p)
            for update in result:
                chat = (update.get("message") or {}).get("chat", {}).get("id")
                if chat is not None:
                    clock.first("update_left", chat)
            return result

    class TimedOpenAI(FakeOpenAI):
        piece_delay = 0.0

        async def _record(self, request: Any) -> Any:
            body = await super()._record(request)
            chat = _chat_of_request(body)
            if chat is not None:
                request["bench_chat"] = chat
                clock.first("request", chat)
            return body

        async def _chat(self, request: Any) -> Any:
            # One identical reply per request: concurrent requests may take each other's, harmlessly.
            self.enqueue(Reply("piece " * PIECES, chunk_size=len("piece "), chunk_delay=self.piece_delay))
            return await super()._chat(request)

    def on_piece(request: Any, n: int, count: int) -> None:
        chat = request.get("bench_chat")
        if chat is not None:
            if n == 0:
                clock.first("first_piece", chat)
            if n == count - 1:
                clock.last("last_piece", chat)

    ai = TimedOpenAI(chunk_size=4096, record=False)
    ai.on_piece = on_piece
    return TimedTelegram(), ai


# --- the bot process ---------------------------------------------------------------------------------


class BotProcess:
    """``ferry telegram`` (or ``ferry signal``) in a process of its own; its CPU time and peak RSS from /proc."""

    def __init__(
        self, env: dict[str, str], log_path: Path, messenger: str = "telegram", command: list[str] | None = None
    ) -> None:
        ferry = Path(sys.executable).with_name("ferry")
        if command is None:
            command = [str(ferry), messenger] if ferry.exists() else [sys.executable, "-m", "bots.cli", messenger]
        self.log_path = log_path
        self.log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def reset_peak(self) -> None:
        with contextlib.suppress(OSError):
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS

    def peak_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def profile(self, out: Path) -> subprocess.Popen[bytes]:
        """py-spy recording this process's stacks to ``out`` until sent SIGINT."""
        spy = Path(sys.executable).with_name("py-spy")
        command = [str(spy), "record", "-p", str(self.pid), "-o", str(out), "--format", "raw", "-r", "200", "--gil"]
        return subprocess.Popen([*command, "--nonblocking"], stdout=subprocess.DEVNULL)

    def strace(self, out: Path) -> subprocess.Popen[bytes]:
        """strace counting this process's file-writing system calls (all threads) into ``out``."""
        calls = "fsync,fdatasync,syncfs,rename,renameat,renameat2"
        command = ["strace", "-f", "-c", "-e", f"trace={calls}", "-o", str(out), "-p", str(self.pid)]
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.log.close()
        return code

    def finish(self) -> None:
        """Stop the bot; print how it exited and its log's first error, if any."""
        code = self.stop()
        lines = self.log_path.read_text(errors="replace").splitlines()
        print(f"bot exited with {code}; {len(lines)} log lines; load: {os.getloadavg()}")
        for line in lines:
            if " ERROR " in line or "Traceback" in line:
                print("  bot log:", line[:200])
                break


def ferry_environment(ai_url: str, data_dir: Path, **messenger: str) -> dict[str, str]:
    """The environment a user would set (``messenger``: its own variables), with the limits a load
    test must lift (the per-person rate) and no model retries."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FERRY_", "TELEGRAM_", "OPENAI_", "SIGNAL_"))}
    env.update(
        OPENAI_BASE_URL=ai_url,
        OPENAI_API_KEY="bench",
        FERRY_MODEL="fake-model",
        FERRY_DATA_DIR=str(data_dir),
        FERRY_ACCESS="open",
        FERRY_RATE_PER_MINUTE="1000000",
        FERRY_MODEL_RETRIES="0",
        **messenger,
    )
    return env


def event_loop_line() -> str:
    """The header line naming the bot's Python and event loop (the default: the bench leaves
    FERRY_EVENT_LOOP unset). The bot runs in this venv's Python; 3.12 needed a quarter more CPU an
    answer than 3.11 here."""
    from bots.loop import loop_factory

    python = ".".join(map(str, sys.version_info[:3]))
    return f"python {python}; event loop: {loop_factory('uvloop')[0]} (FERRY_EVENT_LOOP unset)"


def bot_environment(root: str, token: str, ai_url: str, data_dir: Path, send_rate: float) -> dict[str, str]:
    """``ferry telegram``'s environment (:func:`ferry_environment`) at the given global send rate."""
    return ferry_environment(
        ai_url, data_dir, TELEGRAM_BOT_TOKEN=token, TELEGRAM_API_URL=root, FERRY_TELEGRAM_SEND_RATE=f"{send_rate:g}"
    )


# --- the people --------------------------------------------------------------------------------------


async def _person(tg: Any, load: Load, base: int, slot: int, rounds: int, start: float, clock: Clock,
                  figures: dict[str, list[float]]) -> None:  # fmt: skip
    """One person writing ``rounds`` messages, each after the previous one was answered."""
    for k in range(rounds):
        if load.rate is not None:
            await asyncio.sleep(max(0.0, start + (k * load.chats + slot) / load.rate - time.perf_counter()))
        # Conversations stay short, as people's do; the core's cost grows with history.
        chat = base + slot + load.chats * (k // TURNS_PER_CONVERSATION)
        done = clock.push(chat)
        tg.push_text(chat, f"message {k} from {chat}")
        await done.wait()
        for name, value in clock.figures(chat).items():
            figures.setdefault(name, []).append(value)


async def _run(tg: Any, ai: Any, bot: BotProcess, clock: Clock, load: Load, run: int) -> RunResult:
    ai.piece_delay = load.piece_delay
    per_chat = max(1, load.messages // load.chats)
    base = 10_000_000 * (run + 1)
    figures: dict[str, list[float]] = {}
    bot.reset_peak()
    cpu0, start = bot.cpu(), time.perf_counter()
    await asyncio.gather(
        *(_person(tg, load, base, slot, per_chat, start, clock, figures) for slot in range(load.chats))
    )
    seconds = time.perf_counter() - start
    result = RunResult(load.label, per_chat * load.chats, seconds, figures, bot.cpu() - cpu0, bot.peak_mb())
    result.calls = dict(Counter(call.method for call in tg.calls))
    clock.clear()
    tg.sent.clear()  # the fake's own bookkeeping; keeps this process small
    tg.calls.clear()
    return result


def syscalls_per_answer(table: Path, answers: int) -> str:
    """strace's summary table as calls per answer: files written (renames) and flushes."""
    counts: Counter[str] = Counter()
    for line in table.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[-1].isidentifier() and fields[3].isdigit() and fields[-1] != "total":
            counts["files written" if fields[-1].startswith("rename") else fields[-1]] += int(fields[3])
    return ", ".join(f"{name} {n / answers:.2f}" for name, n in sorted(counts.items()))


async def bench(
    loads: list[Load],
    data_parent: Path,
    send_rate: float,
    profile: Path | None,
    strace: bool = False,
    floor: str | None = None,
) -> None:
    clock = Clock()
    tg, ai = _fakes(clock)
    await tg.start()
    await ai.start()
    tg.listeners.append(
        lambda call: clock.output(
            int(call.params["chat_id"]), str(call.params.get("text", "")), final=call.method == "sendMessage"
        )
        if call.method in ("sendMessageDraft", "sendMessage") else None
    )
    with tempfile.TemporaryDirectory(dir=data_parent, prefix="ferry-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        print(describe("tinydb", Path(tmp)))
        print(f"telegram send rate: {send_rate:g} new messages/s over all chats (FERRY_TELEGRAM_SEND_RATE)")
        print(event_loop_line())
        print(f"model: fake OpenAI-compatible server, {PIECES} pieces per answer; load: {os.getloadavg()}")
        env = bot_environment(tg.root, tg.token, ai.base_url, data_dir, send_rate)
        command = [sys.executable, "-m", "bench.floor_bot"] if floor else None
        if floor:
            env["FLOOR_KIND"] = floor
        bot = BotProcess(env, Path(tmp) / "bot.log", command=command)
        name = f"bench/floor_bot.py, FLOOR_KIND={floor} (no store, no drafts)" if floor else "`ferry telegram`"
        print(f"bot: {name} in pid {bot.pid}; fake Bot API, fake model and people in pid {os.getpid()}")
        spy = tracer = None
        answers = 0
        try:
            await tg.wait_until(lambda: bool(tg.calls_of("getUpdates")), within=60)
            if profile is not None:
                spy = bot.profile(profile)
            if strace:
                tracer = bot.strace(Path(tmp) / "strace.txt")
                await asyncio.sleep(1)  # attached to every thread
            for run, load in enumerate(loads):
                result = await _run(tg, ai, bot, clock, load, run)
                answers += result.messages
                print(result.line(), flush=True)
        finally:
            for watcher in (spy, tracer):
                if watcher is not None:
                    watcher.send_signal(signal.SIGINT)
                    watcher.wait(30)
            if tracer is not None and answers:
                print(f"system calls per answer (strace -f): {syscalls_per_answer(Path(tmp) / 'strace.txt', answers)}")
            bot.finish()
    await ai.close()
    await tg.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", help="comma-separated numbers of chats, each answered as fast as it can be")
    parser.add_argument(
        "--runs", choices=("table", "steady", "all"), default="all",
        help="table: issue 14's two runs only; steady: 100 chats paced at 50 messages/s, answers streaming",
    )  # fmt: skip
    parser.add_argument(
        "--send-rate", type=float, default=30.0,
        help="FERRY_TELEGRAM_SEND_RATE: new messages/s over all chats (30, Telegram's limit, as users run it; "
        "raise it to measure what the process itself can do)",
    )  # fmt: skip
    parser.add_argument("--data-parent", type=Path, default=None, help="where the data folder goes (default: on disk)")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy's collapsed stacks of the bot, to FILE")
    parser.add_argument("--strace", action="store_true", help="count the bot's files written and flushes per answer")
    parser.add_argument(
        "--bot", choices=("ferry", *FLOOR_KINDS), default="ferry",
        help="ferry telegram, or bench/floor_bot.py of that kind: parse, ask, send, nothing else (the floor "
        "under the figures: stock openai, Ferry's lean model client, or json and aiohttp alone)",
    )  # fmt: skip
    args = parser.parse_args()
    loads = [Load(int(c), max(200, 4 * int(c))) for c in args.chats.split(",")] if args.chats else LOADS
    if args.runs != "all":
        loads = TABLE if args.runs == "table" else STEADY
    floor = None if args.bot == "ferry" else args.bot
    asyncio.run(bench(loads, args.data_parent or disk_folder(), args.send_rate, args.profile, args.strace, floor))


if __name__ == "__main__":
    main()
