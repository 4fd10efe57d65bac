"""The Signal and media benches' clock and result line: per chat, when a message was
pushed, first answered and finished; a run's messages/s and first-output latency."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass
class RunResult:
    label: str
    messages: int
    seconds: float
    latencies: list[float]
    fake_cpu: float  # CPU seconds the fakes and the driver used
    bot_cpu: float = 0.0  # CPU seconds the bot's process used

    def line(self) -> str:
        lat = sorted(self.latencies)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        return (
            f"{self.label:<40} {self.messages:>5} msgs {self.messages / self.seconds:7.1f} msg/s  "
            f"first output median {statistics.median(lat) * 1000:6.1f} ms  p99 {p99 * 1000:6.1f} ms  "
            f"CPU busy: bot {self.bot_cpu / self.seconds:4.0%}, fakes {self.fake_cpu / self.seconds:4.0%}"
        )


class Clock:
    """When each chat's message was pushed, first answered and finished (keys: chat or person)."""

    def __init__(self) -> None:
        self.pushed_at: dict[Hashable, float] = {}
        self.first_at: dict[Hashable, float] = {}
        self.done: dict[Hashable, asyncio.Event] = {}

    def push(self, key: Hashable) -> asyncio.Event:
        self.done[key] = asyncio.Event()
        self.first_at.pop(key, None)
        self.pushed_at[key] = time.perf_counter()
        return self.done[key]

    def output(self, key: Hashable, final: bool = False) -> None:
        if key in self.pushed_at and key not in self.first_at:
            self.first_at[key] = time.perf_counter()
        if final:
            self.finished(key)

    def finished(self, key: Hashable) -> None:
        if key in self.done:
            self.done[key].set()

    def latency(self, key: Hashable) -> float:
        return self.first_at[key] - self.pushed_at[key]

    def clear(self) -> None:
        self.pushed_at.clear()
        self.first_at.clear()
        self.done.clear()
