"""Two processes (and many tasks in one) writing to the same store at once lose nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from core.store.base import ConversationRecord, MessageRecord
from core.store.tinydb_store import TinyDBStore
from tests.store.store_worker import DAY, SHARED_CONVERSATION

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("store_worker.py")
ROUNDS = 120
NAMES = ("alpha", "beta")


def test_two_processes_lose_no_update(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "concurrent", str(data_dir), name, str(ROUNDS), str(go)],
            stdout=subprocess.PIPE,
            env=env,
            cwd=REPO,
        )
        for name in NAMES
    ]
    go.touch()
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out == b"done\n"

    async def check() -> None:
        store = TinyDBStore(data_dir)
        await store.open()
        shared = await store.get_messages(SHARED_CONVERSATION)
        assert [m.seq for m in shared] == list(range(2 * ROUNDS))  # unique and contiguous
        assert sorted(m.content for m in shared) == sorted(f"{n}:{i}" for n in NAMES for i in range(ROUNDS))
        for name in NAMES:
            # Each writer's own messages are in its order.
            assert [m.content for m in shared if m.content.startswith(name)] == [
                f"{name}:{i}" for i in range(ROUNDS)
            ]
            own = await store.get_messages(f"own-{name}")
            assert [m.content for m in own] == [f"{name}:{i}" for i in range(ROUNDS)]
            assert all([await store.get_meta(f"{name}:{i}") == i for i in range(ROUNDS)])
            assert (await store.usage_totals(name, 20000 * DAY)).tokens == 5 * ROUNDS
            found = await store.find_user(f"telegram:{name}{ROUNDS - 1}")
            assert found is not None and found.id == f"{name}-u{ROUNDS - 1}"
        conv = await store.get_conversation(SHARED_CONVERSATION)
        assert conv is not None and conv.message_count == 2 * ROUNDS
        assert (await store.global_usage_totals(20000 * DAY)).tokens == 5 * ROUNDS * len(NAMES)
        assert len(await store.list_users()) == ROUNDS * len(NAMES)
        await store.close()

    asyncio.run(check())


async def test_concurrent_tasks_and_two_instances_in_one_process(tmp_path: Path) -> None:
    a, b = TinyDBStore(tmp_path), TinyDBStore(tmp_path)
    await asyncio.gather(a.open(), b.open())
    await a.put_conversation(ConversationRecord(id="c", scope="user:u"))

    async def write(store: TinyDBStore, i: int) -> list[MessageRecord]:
        return await store.append_messages([MessageRecord(f"m{i}", "c", "user", f"t{i}", float(i))])

    results = await asyncio.gather(*(write(a if i % 2 else b, i) for i in range(80)))
    assert sorted(r[0].seq for r in results) == list(range(80))
    stored = await a.get_messages("c")
    assert sorted(m.content for m in stored) == sorted(f"t{i}" for i in range(80))
    conv = await b.get_conversation("c")
    assert conv is not None and conv.message_count == 80 and conv.updated_at == 79.0
