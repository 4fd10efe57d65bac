"""The intake kill test, for any backend: writers SIGKILLed while they record, then what survived.

A message acknowledged upstream after ``record()`` must be there after any crash, at its place in
its chat's line, with every mark that was acknowledged (issue 11). ``store_worker.py intake TARGET``
prints one line per acknowledged step; a line cut off by the kill was never acknowledged.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.store.base import IntakeRecord, Store

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("store_worker.py")

Acked = dict[str, tuple[str, int, str]]  # key -> (chat, seq, last acknowledged status)


def kill_writers(target: str, log: Path, rounds: int, within: float) -> Acked:
    """Start a recording writer ``rounds`` times, SIGKILL it at a seeded moment; what it acknowledged."""
    rng = random.Random(11)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    acked: Acked = {}
    for _ in range(rounds):
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, str(WORKER), "intake", target], stdout=out, env=env, cwd=REPO)
            deadline = time.monotonic() + within
            wanted = rng.randint(1, 40)
            while log.read_bytes().count(b"\n") < wanted and time.monotonic() < deadline:
                time.sleep(0.001)
            time.sleep(rng.uniform(0.0, 0.005))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        for line in log.read_bytes().decode().splitlines(keepends=True):
            if not line.endswith("\n"):
                continue  # cut off by the kill: never acknowledged
            kind, key, chat, *rest = line.split()
            if kind == "rec":
                acked[key] = (chat, int(rest[0]), "received")
            else:
                acked[key] = (chat, acked[key][1], "answered" if kind == "ans" else "delivered")
    return acked


def survivors(store: Store, acked: Acked) -> tuple[Acked, set[str]]:
    """The unfinished records as the store has them, and which acknowledged keys it still knows."""

    async def read() -> tuple[Acked, set[str]]:
        await store.open()
        try:
            unfinished: Acked = {r.key: (r.chat, r.seq, r.status) for r in await store.unfinished("telegram")}
            known = set()
            for key, (chat, _, _) in acked.items():
                if await store.record(IntakeRecord(key, chat, {}, time.time())) is None:
                    known.add(key)
            return unfinished, known
        finally:
            await store.close()

    return asyncio.run(read())
