"""kill -9 a writer at random moments: the store always opens and keeps every acknowledged turn."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.store.base import MessageRecord
from core.store.tinydb_store import TinyDBStore
from tests.store.intake_kill import kill_writers, survivors
from tests.store.store_worker import CRASH_CONVERSATION

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("store_worker.py")
ROUNDS = 30


def test_kill_minus_nine_never_loses_an_acknowledged_turn(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    rng = random.Random(1234)
    log = tmp_path / "acks.log"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    expected: dict[int, str] = {}
    total_acks = 0
    for _ in range(ROUNDS):
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, str(WORKER), "crash", str(data_dir)], stdout=out, env=env, cwd=REPO
            )
            deadline = time.monotonic() + 10
            wanted = 0 if rng.random() < 0.2 else rng.randint(1, 60)
            delay = rng.uniform(0.0, 0.6) if wanted == 0 else rng.uniform(0.0, 0.005)
            while wanted and log.read_bytes().count(b"\n") < wanted and time.monotonic() < deadline:
                time.sleep(0.001)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        for line in log.read_bytes().decode().splitlines(keepends=True):
            if not line.endswith("\n"):
                continue  # cut off by the kill: never acknowledged
            kind, seq_text, *rest = line.split(" ", 2)
            seq = int(seq_text)
            if kind == "trunc":
                expected = {s: c for s, c in expected.items() if s < seq}
            else:
                expected[seq] = rest[0].rstrip("\n")
                total_acks += 1

        messages = check_store(data_dir)
        for seq, content in expected.items():
            assert seq < len(messages), f"acknowledged seq {seq} lost"
            got = messages[seq]
            if content.startswith("a "):
                assert got.content == content and got.status == "ok"
            else:
                assert got.content == content
    assert total_acks > ROUNDS  # the writers really wrote


def check_store(data_dir: Path) -> list[MessageRecord]:
    """Open the store as a fresh process would and read everything the writer touches."""

    async def read() -> list[MessageRecord]:
        store = TinyDBStore(data_dir)
        await store.open()
        try:
            messages = await store.get_messages(CRASH_CONVERSATION)
            assert [m.seq for m in messages] == list(range(len(messages))), "seqs not contiguous"
            await store.get_meta("anything")
            await store.usage_totals("crash", 0)
            await store.find_user("telegram:1")
            return messages
        finally:
            await store.close()

    return asyncio.run(read())


def test_kill_minus_nine_never_loses_a_recorded_message_or_its_marks(tmp_path: Path) -> None:
    # Issue 11: a message acknowledged upstream after record() must be there after any crash,
    # at its place in its chat's line, with every mark that was acknowledged.
    data_dir = tmp_path / "data"
    acked = kill_writers(str(data_dir), tmp_path / "intake.log", ROUNDS // 3, within=10)
    unfinished, known = survivors(TinyDBStore(data_dir), acked)
    assert len(acked) > ROUNDS // 3, "the writers really wrote"
    assert known == set(acked), "every acknowledged record is still known"
    order = {"received": 0, "answered": 1, "delivered": 2}
    for key, (chat, seq, status) in acked.items():
        # A mark may have landed with its acknowledgement cut off by the kill: never less than acknowledged.
        got_chat, got_seq, got_status = unfinished.get(key, (chat, seq, "delivered"))
        assert (got_chat, got_seq) == (chat, seq), "its place in the line is kept"
        assert order[got_status] >= order[status], f"{key}: acknowledged {status}, found {got_status}"
