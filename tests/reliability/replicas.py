"""Replica harness (issue 16): N real ``ferry telegram`` processes on one PostgreSQL store, one entry.

The fake Bot API posts each update to the entry (:class:`~tests.fakes.round_robin.RoundRobin`,
round robin over the replicas' webhook ports, as Caddy or nginx would); every replica runs the
installed ``ferry telegram`` in webhook mode with the same ``FERRY_DATABASE_URL``, secret and
public URL. ``chats`` people each send ``messages`` tagged messages at once (the model answers at
once unless ``model_delay``), optionally one replica is SIGKILLed once ``kill_after`` of the
answers are visible, and then every message is counted from what the person sees: answered once,
lost, answered twice, and order violations (a chat's answers visible out of the order its
messages were sent).

Used by ``tests/reliability/test_replicas.py`` and ``bench/replica_bench.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.fakes.round_robin import RoundRobin
from tests.fakes.telegram_server import FakeTelegram
from tests.reliability.harness import BotProcess, Tally, base_env, count, free_port, wait_until
from tests.reliability.model import SlowModel, answer_for

SECRET = "replica-harness-secret"


@dataclass(frozen=True)
class ReplicaLoad:
    """One run: how many replicas, who writes how much, whether a replica dies."""

    replicas: int = 2
    chats: int = 6
    messages: int = 4
    kill_after: float | None = None
    """SIGKILL replica 0 once this share of the answers is visible (None: nobody dies)."""
    model_delay: float = 0.0
    """Seconds between two pieces of a streamed answer (0: the model answers at once)."""
    limit: float = 180.0


@dataclass
class ReplicaTally:
    """What the people saw: the kill harness's tally, and order violations."""

    seen: Tally
    order_violations: int = 0
    seconds: float = 0.0
    killed: bool = False
    taken_by: dict[str, int] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        """Answers a second, from the first message sent to the last answer seen."""
        return self.seen.answered / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        """One printable line."""
        seen = self.seen
        return (
            f"sent {seen.sent}, answered {seen.answered}, lost {seen.lost}, twice {seen.duplicated}, "
            f"order violations {self.order_violations}; {self.seconds:.1f} s, {self.per_second:.1f} answers/s"
        )


def tally(expected: dict[int, list[str]], visible: dict[int, list[str]]) -> ReplicaTally:
    """Count each chat's answers in what it shows (:func:`~tests.reliability.harness.count`), and their order."""
    out = ReplicaTally(count(expected, visible))
    for chat, tags in expected.items():
        shown = visible.get(chat, [])
        positions = [shown.index(answer_for(tag)) for tag in tags if answer_for(tag) in shown]
        out.order_violations += sum(1 for a, b in itertools.pairwise(positions) if b < a)
    return out


class Replicas:
    """The fakes, the entry and the replica processes of one run."""

    def __init__(self, load: ReplicaLoad, workdir: Path, database_url: str) -> None:
        self.load = load
        self.workdir = workdir
        self.database_url = database_url
        self.tg = FakeTelegram()
        self.model = SlowModel(chunk_delay=load.model_delay, chunks=3)
        self.entry = RoundRobin([])
        self.bots: list[BotProcess] = []
        self.update_ids: dict[int, list[int]] = {}  # chat -> its updates' ids, in order

    async def __aenter__(self) -> Replicas:
        await self.tg.start()
        await self.model.__aenter__()
        await self.entry.start()
        ports = [free_port() for _ in range(self.load.replicas)]
        self.entry.backends = [f"http://127.0.0.1:{p}" for p in ports]
        env = base_env(self.model, self.workdir / "data")
        env.update(
            TELEGRAM_BOT_TOKEN=self.tg.token, TELEGRAM_API_URL=self.tg.root, FERRY_DATABASE_URL=self.database_url,
            FERRY_TELEGRAM_WEBHOOK_URL=f"{self.entry.url}/tg-hook", FERRY_TELEGRAM_WEBHOOK_LISTEN="127.0.0.1",
            FERRY_TELEGRAM_WEBHOOK_SECRET=SECRET, FERRY_TELEGRAM_SEND_RATE="10000",
        )  # fmt: skip
        for i, port in enumerate(ports):
            bot_env = {**env, "FERRY_TELEGRAM_WEBHOOK_PORT": str(port)}
            self.bots.append(BotProcess("telegram", bot_env, self.workdir / f"replica-{i}.log"))
        await asyncio.gather(*(bot.start() for bot in self.bots))
        ok = await wait_until(lambda: len(self.tg.calls_of("setWebhook")) >= len(self.bots), 90)
        assert ok, f"the replicas did not start; see {self.workdir}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(bot.stop() for bot in self.bots))
        await self.entry.stop()
        await self.model.__aexit__(None, None, None)
        await self.tg.stop()

    def answers(self, chats: list[int]) -> int:
        """Complete answers visible in these chats."""
        return sum(1 for c in chats for text in self.tg.log(c).texts if text.startswith("Answer "))

    async def run(self) -> ReplicaTally:
        """Everyone writes at once; count what they see once it is all answered (or nothing moves)."""
        load = self.load
        chats = [7000 + i for i in range(load.chats)]
        expected = {c: [f"c{i}m{j}" for j in range(load.messages)] for i, c in enumerate(chats)}
        total = load.chats * load.messages
        started = time.monotonic()
        for j in range(load.messages):
            for c, tags in expected.items():
                self.tg.push_text(c, f"question {tags[j]}: what do you think?")
                self.update_ids.setdefault(c, []).append(int(self.tg.pending_updates[-1]["update_id"]))
        killed = False
        share = load.kill_after
        if share is not None:
            await wait_until(lambda: self.answers(chats) >= total * share, load.limit)
            await self.bots[0].kill()
            killed = True
        last = -1
        quiet_since = time.monotonic()
        while time.monotonic() - started < load.limit:
            now = self.answers(chats)
            if now >= total and not self.tg.pending_updates:
                break
            if now != last:
                last, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since > 20:
                break
            await asyncio.sleep(0.02)
        seconds = time.monotonic() - started
        await asyncio.sleep(1.0)  # a second sending of an answer would show by now
        out = tally(expected, {c: self.tg.log(c).texts for c in chats})
        out.seconds, out.killed = seconds, killed
        for backend in self.entry.forwarded:
            out.taken_by[backend] = out.taken_by.get(backend, 0) + 1
        return out
