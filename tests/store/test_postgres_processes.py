"""PostgreSQL under real processes: kill -9 a writer, and two writers at once, lose nothing acknowledged."""

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
from core.store.postgres import PostgresStore
from tests.store.intake_kill import kill_writers, survivors
from tests.store.pg import pg_schema, schema_url
from tests.store.store_worker import CRASH_CONVERSATION, DAY, SHARED_CONVERSATION

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("store_worker.py")
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def read_back(url: str) -> list[MessageRecord]:
    """Open the store as a fresh process would and read everything the writer touches."""

    async def read() -> list[MessageRecord]:
        store = PostgresStore(url)
        await store.open()
        try:
            messages = await store.get_messages(CRASH_CONVERSATION)
            assert [m.seq for m in messages] == list(range(len(messages))), "seqs not contiguous"
            conv = await store.get_conversation(CRASH_CONVERSATION)
            assert conv is not None and conv.message_count == len(messages)
            await store.usage_totals("crash", 0)
            await store.find_user("telegram:1")
            return messages
        finally:
            await store.close()

    return asyncio.run(read())


def test_kill_minus_nine_never_loses_an_acknowledged_turn(tmp_path: Path) -> None:
    rng = random.Random(4321)
    log = tmp_path / "acks.log"
    expected: dict[int, str] = {}
    total_acks = 0
    with pg_schema() as schema:
        url = schema_url(schema)
        for _ in range(8):
            with open(log, "wb") as out:
                proc = subprocess.Popen([sys.executable, str(WORKER), "crash", url], stdout=out, env=ENV, cwd=REPO)
                deadline = time.monotonic() + 20
                wanted = rng.randint(1, 80)
                while log.read_bytes().count(b"\n") < wanted and time.monotonic() < deadline:
                    time.sleep(0.001)
                time.sleep(rng.uniform(0.0, 0.01))
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
            messages = read_back(url)
            for seq, content in expected.items():
                assert seq < len(messages), f"acknowledged seq {seq} lost"
                assert messages[seq].content == content
                if content.startswith("a "):
                    assert messages[seq].status == "ok"
    assert total_acks > 8  # the writers really wrote


def test_two_processes_lose_no_update(tmp_path: Path) -> None:
    rounds, names = 60, ("alpha", "beta")
    go = tmp_path / "go"
    with pg_schema() as schema:
        url = schema_url(schema)
        procs = [
            subprocess.Popen(
                [sys.executable, str(WORKER), "concurrent", url, name, str(rounds), str(go)],
                stdout=subprocess.PIPE,
                env=ENV,
                cwd=REPO,
            )
            for name in names
        ]
        go.touch()
        for proc in procs:
            out, _ = proc.communicate(timeout=120)
            assert proc.returncode == 0 and out == b"done\n"

        async def check() -> None:
            store = PostgresStore(url)
            await store.open()
            try:
                shared = await store.get_messages(SHARED_CONVERSATION)
                assert [m.seq for m in shared] == list(range(2 * rounds))
                for name in names:
                    assert [m.content for m in shared if m.content.startswith(name)] == [
                        f"{name}:{i}" for i in range(rounds)
                    ]
                    assert [await store.get_meta(f"{name}:{i}") for i in range(rounds)] == list(range(rounds))
                    assert (await store.usage_totals(name, 20000 * DAY)).tokens == 5 * rounds
                conv = await store.get_conversation(SHARED_CONVERSATION)
                assert conv is not None and conv.message_count == 2 * rounds
                assert (await store.global_usage_totals(20000 * DAY)).tokens == 5 * rounds * len(names)
                assert len(await store.list_users()) == rounds * len(names)
            finally:
                await store.close()

        asyncio.run(check())


def test_kill_minus_nine_never_loses_a_recorded_message_or_its_marks(tmp_path: Path) -> None:
    # Issue 11 on PostgreSQL: a message acknowledged upstream after record() is there after any
    # crash, at its place in its chat's line, with every mark that was acknowledged (as for TinyDB).
    with pg_schema() as schema:
        url = schema_url(schema)
        acked = kill_writers(url, tmp_path / "intake.log", 8, within=20)
        unfinished, known = survivors(PostgresStore(url), acked)
    assert len(acked) > 8, "the writers really wrote"
    assert known == set(acked), "every acknowledged record is still known"
    order = {"received": 0, "answered": 1, "delivered": 2}
    for key, (chat, seq, status) in acked.items():
        # A mark may have landed with its acknowledgement cut off by the kill: never less than acknowledged.
        got_chat, got_seq, got_status = unfinished.get(key, (chat, seq, "delivered"))
        assert (got_chat, got_seq) == (chat, seq), "its place in the line is kept"
        assert order[got_status] >= order[status], f"{key}: acknowledged {status}, found {got_status}"
