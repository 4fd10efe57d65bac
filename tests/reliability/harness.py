"""Kill harness: the real ``ferry telegram`` / ``ferry signal`` processes under load, SIGKILLed and restarted.

The fakes (Bot API, signal-cli-rest-api, a slow model) run in the caller's event loop; the bot is
the installed ``ferry`` entry point in a child process, so a SIGKILL loses exactly what a crash of
the real process loses. Load: ``chats`` people each send ``messages`` tagged messages
(``c<chat>m<n>``) at seeded random pauses; meanwhile the bot is killed ``kills`` times at seeded
random moments and started again after ``restart_delay``. When the load is over and the last bot
has been quiet for ``settle`` seconds, every message is counted from what the person sees:
answered once, unanswered (lost), answered twice or more (duplicated); every visible bot message
that is not a complete answer is a stub left in the chat.

Used by ``tests/reliability/test_kill.py`` (few rounds, for CI) and ``bench/kill_bench.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.fakes.signal_server import BOT_NUMBER, FakeSignalServer
from tests.fakes.telegram_server import FakeTelegram
from tests.reliability.model import SlowModel, answer_for


@dataclass(frozen=True)
class Load:
    """One round: who writes how much, and how often the bot dies."""

    chats: int = 4
    messages: int = 3
    kills: int = 2
    seed: int = 1
    gap: float = 0.5
    """Mean seconds between two messages of one person (exponential, seeded)."""
    min_uptime: float = 0.3
    """A kill is due at a seeded random moment of the load; it waits until the bot has been up this long."""
    while_answering: bool = False
    """Kill only while an answer is being streamed (makes a loss certain, for CI's strict xfail)."""
    restart_delay: float = 0.2
    settle: float = 6.0
    limit: float = 120.0
    groups: bool = True
    """Telegram: every other chat is a group where the bot is mentioned (answers stream by edits)."""
    webhook: bool = False
    """Telegram: the bot takes updates by webhook (on 127.0.0.1) instead of long polling."""
    persistence: bool = False
    """Signal: signal-cli-rest-api runs its persistence plugin (README), which keeps what arrives
    while no WebSocket is attached; the bot recovers it after each reconnection."""


@dataclass
class Tally:
    """Per message, what the person ended up seeing."""

    sent: int = 0
    answered: int = 0
    lost: int = 0
    duplicated: int = 0
    stubs: int = 0
    kills: int = 0
    rounds: int = 0
    dropped_upstream: int = 0
    """Signal: messages signal-cli-rest-api dropped because no WebSocket was attached (never reached the bot)."""
    stub_samples: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        """Sum ``other`` into this tally."""
        for name in ("sent", "answered", "lost", "duplicated", "stubs", "kills", "rounds", "dropped_upstream"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.stub_samples.extend(other.stub_samples[: max(0, 5 - len(self.stub_samples))])

    def line(self) -> str:
        """One printable line."""
        return (
            f"rounds {self.rounds}, kills {self.kills}: sent {self.sent}, answered once {self.answered}, "
            f"lost {self.lost}, answered twice {self.duplicated}, stubs left visible {self.stubs}"
            + (f" (lost upstream, no WebSocket attached: {self.dropped_upstream})" if self.dropped_upstream else "")
        )


def count(expected: dict[int, list[str]], seen: dict[int, list[str]]) -> Tally:
    """Tally each expected tag against the texts visible in its chat."""
    tally = Tally(rounds=1)
    for chat, tags in expected.items():
        visible = seen.get(chat, [])
        complete = {answer_for(tag) for tag in tags}
        for tag in tags:
            tally.sent += 1
            times = visible.count(answer_for(tag))
            if times == 0:
                tally.lost += 1
            elif times == 1:
                tally.answered += 1
            else:
                tally.duplicated += 1
        for text in visible:
            if text not in complete:
                tally.stubs += 1
                if len(tally.stub_samples) < 5:
                    tally.stub_samples.append(text[:60])
    return tally


def ferry_command() -> list[str]:
    """The installed ``ferry`` entry point beside this interpreter (``python -m bots.cli`` if absent)."""
    exe = Path(sys.executable).with_name("ferry")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "bots.cli"]


class BotProcess:
    """The bot as an operator runs it, which the harness may SIGKILL and start again."""

    def __init__(self, messenger: str, env: dict[str, str], log_path: Path) -> None:
        self.messenger = messenger
        self.env = env
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.started_at = 0.0
        self.killed_at: list[float] = []

    async def start(self) -> None:
        """Start a fresh process; its stderr is appended to ``log_path``."""
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *ferry_command(), self.messenger,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, env=self.env,
            )  # fmt: skip
        self.started_at = time.monotonic()

    async def kill(self) -> None:
        """SIGKILL: nothing in the process gets to run any more."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            self.killed_at.append(time.monotonic())
            await self.proc.wait()

    async def stop(self) -> None:
        """End the last process politely (SIGTERM), forcefully if it does not go."""
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError:
            await self.kill()


def base_env(model: SlowModel, data_dir: Path) -> dict[str, str]:
    """The environment both bots share: the slow model, an open bot, a fresh store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FERRY_", "TELEGRAM_", "SIGNAL_", "OPENAI_"))}
    env.update(
        OPENAI_BASE_URL=model.base_url, OPENAI_API_KEY="sk-test", FERRY_MODEL="fake-model",
        FERRY_DATA_DIR=str(data_dir), FERRY_ACCESS="open", PYTHONUNBUFFERED="1",
    )  # fmt: skip
    return env


async def wait_until(predicate: Callable[[], bool], within: float, step: float = 0.05) -> bool:
    """Whether ``predicate`` became true within ``within`` seconds (checked every ``step``)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return predicate()


@dataclass
class _Round:
    load: Load
    bot: BotProcess
    model: SlowModel
    ready: Callable[[], bool]
    activity: Callable[[], int]
    all_answered: Callable[[], bool]
    kills: int = 0

    async def killer(self) -> None:
        # The moments are spread over the time the people write (plus a little), so the bot is up
        # for most of the load and each kill catches whatever is in flight at that moment.
        rng = random.Random(f"kill-{self.load.seed}")
        span = self.load.messages * self.load.gap * 1.2
        start = time.monotonic()
        for due in sorted(rng.uniform(0, span) for _ in range(self.load.kills)):
            await asyncio.sleep(max(0.0, start + due - time.monotonic()))
            await wait_until(self.ready, 60)
            await asyncio.sleep(self.load.min_uptime)
            if self.load.while_answering:
                await wait_until(lambda: self.model.streaming > 0, 5, step=0.01)
            await self.bot.kill()
            self.kills += 1
            await asyncio.sleep(self.load.restart_delay)
            await self.bot.start()

    async def settle(self) -> None:
        deadline = time.monotonic() + self.load.limit
        # The last restart may still be starting (seconds on a busy machine): quiet before it is
        # up says nothing about whether it is done.
        await wait_until(self.ready, self.load.limit)
        last, quiet_since = self.activity(), time.monotonic()
        while time.monotonic() < deadline and not self.all_answered():
            await asyncio.sleep(0.2)
            now = self.activity()
            if now != last:
                last, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since > self.load.settle and self.model.streaming == 0:
                break


async def _people(load: Load, send: Callable[[int, str], object], expected: dict[int, list[str]]) -> None:
    async def person(i: int) -> None:
        rng = random.Random(f"person-{load.seed}-{i}")
        for j in range(load.messages):
            await asyncio.sleep(rng.expovariate(1 / load.gap))
            tag = f"c{i}m{j}"
            expected.setdefault(i, []).append(tag)
            result = send(i, f"question {tag}: what do you think?")
            if asyncio.iscoroutine(result):
                await result

    await asyncio.gather(*(person(i) for i in range(load.chats)))


async def telegram_round(load: Load, workdir: Path, *, model_delay: float = 0.3) -> Tally:
    """One round against ``ferry telegram`` (long polling, or a webhook with ``load.webhook``)."""
    async with FakeTelegram() as tg, SlowModel(chunk_delay=model_delay) as model:
        env = base_env(model, workdir / "data")
        env.update(TELEGRAM_BOT_TOKEN=tg.token, TELEGRAM_API_URL=tg.root)
        if load.webhook:
            env.update(webhook_env(free_port()))
        bot = BotProcess("telegram", env, workdir / "telegram.log")
        chat_ids = {i: (-1000 - i if load.groups and i % 2 else 5000 + i) for i in range(load.chats)}

        def send(i: int, text: str) -> None:
            chat = chat_ids[i]
            if chat < 0:
                tg.push_group_text(chat, 5000 + i, text, mention=True)
            else:
                tg.push_text(chat, text)

        expected: dict[int, list[str]] = {}

        def seen() -> dict[int, list[str]]:
            return {i: tg.log(chat_ids[i]).texts for i in expected}

        def all_answered() -> bool:
            return sum(len(t) for t in expected.values()) == load.chats * load.messages and count(
                expected, seen()
            ).answered == load.chats * load.messages

        def ready() -> bool:
            taking = "setWebhook" if load.webhook else "getUpdates"
            return any(c.method == taking and c.at > bot.started_at for c in reversed(tg.calls[-50:]))

        await bot.start()
        rnd = _Round(load, bot, model, ready, lambda: len(tg.calls), all_answered)
        try:
            await wait_until(rnd.ready, 60)  # people write to a bot that is up; start-up is not the point
            await asyncio.gather(_people(load, send, expected), rnd.killer())
            await rnd.settle()
        finally:
            await bot.stop()
        tally = count(expected, {i: tg.log(chat_ids[i]).texts for i in expected})
        tally.kills = rnd.kills
        return tally


@contextlib.asynccontextmanager
async def telegram_bot(tmp_path: Path) -> AsyncIterator[FakeTelegram]:
    """A real `ferry telegram` polling the fake Bot API (log in ``tmp_path/telegram.log``), stopped after."""
    async with FakeTelegram() as tg, SlowModel(chunk_delay=0.01) as model:
        env = base_env(model, tmp_path / "data")
        env.update(TELEGRAM_BOT_TOKEN=tg.token, TELEGRAM_API_URL=tg.root)
        bot = BotProcess("telegram", env, tmp_path / "telegram.log")
        await bot.start()
        try:
            await tg.wait_until(lambda: bool(tg.calls_of("getUpdates")), within=60)
            yield tg
        finally:
            await bot.stop()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def webhook_env(port: int) -> dict[str, str]:
    """The settings for webhook mode on 127.0.0.1 only (the fake Bot API posts there)."""
    return {
        "FERRY_TELEGRAM_WEBHOOK_URL": f"http://127.0.0.1:{port}/tg-hook",
        "FERRY_TELEGRAM_WEBHOOK_PORT": str(port),
        "FERRY_TELEGRAM_WEBHOOK_LISTEN": "127.0.0.1",
        "FERRY_TELEGRAM_WEBHOOK_SECRET": "kill-harness-secret",
    }


def signal_person(i: int) -> tuple[str, str]:
    """A stable (uuid, number) for person ``i``."""
    return str(uuid.UUID(int=0x5157 << 64 | i)), f"+1555010{i:04d}"


async def signal_round(load: Load, workdir: Path, *, model_delay: float = 0.3) -> Tally:
    """One round against ``ferry signal`` (json-rpc WebSocket; frames while detached are dropped,
    and kept by the persistence plugin with ``load.persistence``)."""
    async with FakeSignalServer(persistence=load.persistence) as fake, SlowModel(chunk_delay=model_delay) as model:
        env = base_env(model, workdir / "data")
        env.update(SIGNAL_SERVICE=fake.service, SIGNAL_PHONE_NUMBER=BOT_NUMBER)
        bot = BotProcess("signal", env, workdir / "signal.log")
        expected: dict[int, list[str]] = {}

        async def send(i: int, text: str) -> None:
            uid, number = signal_person(i)
            await fake.push_message(uid, number, text)

        def seen() -> dict[int, list[str]]:
            return {i: fake.seen(signal_person(i)[0]) for i in expected}

        def all_answered() -> bool:
            total = load.chats * load.messages
            return sum(len(t) for t in expected.values()) == total and count(expected, seen()).answered == total

        await bot.start()
        rnd = _Round(load, bot, model, lambda: fake.connected > 0, lambda: len(fake.sent), all_answered)
        try:
            await wait_until(rnd.ready, 60)  # people write to a bot that is up; start-up is not the point
            await asyncio.gather(_people(load, send, expected), rnd.killer())
            await rnd.settle()
        finally:
            await bot.stop()
        tally = count(expected, seen())
        tally.kills = rnd.kills
        tally.dropped_upstream = len(fake.dropped)
        return tally


@dataclass
class Windows:
    """Seconds during which frames were dropped because no receive WebSocket was attached."""

    ws_drops: list[float] = field(default_factory=list)
    service_restarts: list[float] = field(default_factory=list)
    bot_restarts: list[float] = field(default_factory=list)

    @staticmethod
    def describe(values: list[float]) -> str:
        """Median and worst, in seconds."""
        if not values:
            return "n/a"
        return f"median {statistics.median(values):.2f} s, worst {max(values):.2f} s (n={len(values)})"


async def signal_loss_windows(
    workdir: Path,
    *,
    drops: int = 20,
    service_restarts: int = 5,
    bot_restarts: int = 5,
    seed: int = 1,
    traffic: bool = False,
    service_down: float = 5.0,
) -> Windows:
    """Measure the gap with no attached WebSocket after each kind of interruption.

    Drop: the service closes the socket; gap = close → next attach. Service restart: the service
    is down ``service_down`` s (a signal-cli JVM takes seconds to start); gap = back up → next
    attach (signal-cli fetches the backlog at start and drops it, so from "up" on every message
    is lost until the bot attaches). Bot restart: SIGKILL, start
    again at once; gap = kill → next attach. With ``traffic`` a person writes once after every
    reconnection (a busy bot); without, the bot is idle between interruptions.
    """
    rng = random.Random(seed)
    windows = Windows()
    async with FakeSignalServer() as fake, SlowModel(chunk_delay=0.01) as model:
        env = base_env(model, workdir / "data")
        env.update(SIGNAL_SERVICE=fake.service, SIGNAL_PHONE_NUMBER=BOT_NUMBER)
        bot = BotProcess("signal", env, workdir / "signal-window.log")
        await bot.start()
        try:

            async def attached_after(t0: float, within: float = 120) -> float:
                ok = await wait_until(lambda: any(e == "attach" and t > t0 for e, t in fake.attach_log), within, 0.005)
                t1 = min((t for e, t in fake.attach_log if e == "attach" and t > t0), default=time.monotonic())
                if traffic:
                    uid, number = signal_person(0)
                    await fake.push_message(uid, number, "question c0m0: still there?")
                return (t1 - t0) if ok else within

            await fake.wait_connected(within=60)
            for _ in range(drops):
                await asyncio.sleep(rng.uniform(0.2, 1.0))
                t0 = time.monotonic()
                await fake.drop_websockets()
                windows.ws_drops.append(await attached_after(t0))
            for _ in range(service_restarts):
                await asyncio.sleep(rng.uniform(0.2, 1.0))
                await fake.restart(down_for=service_down)
                up = next(t for e, t in reversed(fake.attach_log) if e == "up")
                windows.service_restarts.append(await attached_after(up))
            for _ in range(bot_restarts):
                await wait_until(lambda: fake.connected > 0, 120)
                await asyncio.sleep(rng.uniform(0.2, 1.0))
                await bot.kill()
                t0 = bot.killed_at[-1]
                await bot.start()
                windows.bot_restarts.append(await attached_after(t0))
        finally:
            await bot.stop()
    return windows


def no_content_in(log_path: Path, needles: list[str]) -> list[str]:
    """The needles (message texts) that appear in a bot's log: each is a leak."""
    with contextlib.suppress(FileNotFoundError):
        text = log_path.read_text(errors="replace")
        return [n for n in needles if n in text]
    return []
