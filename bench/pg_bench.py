"""Store contract operations on PostgreSQL next to TinyDB, and ``ferry store copy`` at scale.

1. Fills a TinyDB data folder (on disk) with N users × M messages (one conversation each) with the
   store bench's bulk loader, which writes TinyDB's own layout.
2. ``ferry store copy`` of that folder into a fresh PostgreSQL schema, run as the real command in a
   child process: wall time and the child's peak resident memory (``ru_maxrss``).
3. Times each store operation, one at a time on random users, on both stores now holding the same
   data: p50 and p99 in milliseconds. A "turn" is what the assistant stores for one exchange: the
   person's message, then the answer together with its usage.

PostgreSQL runs on the same machine (127.0.0.1:5432, default settings: fsync on, synchronous commit).
The machine is shared with other jobs: treat the figures as an order of magnitude.

Usage: ``python bench/pg_bench.py [--users 10000] [--messages 100] [--ops 300] [--url postgresql://…]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg

from bench.datadir import disk_folder, file_system
from bench.store_bench import ANSWER_TEXT, USER_TEXT, bulk_load
from core.store.base import MessageRecord, Store, UsageRecord, UserRecord
from core.store.postgres import PostgresStore
from core.store.tinydb_store import TinyDBStore

REPO = Path(__file__).resolve().parents[1]
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
T1 = 1_767_225_600.0 + 86400


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


def operations(store: Store, users: int, rng: random.Random) -> dict[str, Callable[[], Awaitable[object]]]:
    """One call of each contract operation on a random user, as the bots make them."""

    def pick() -> int:
        return rng.randrange(users)

    def user(n: int) -> UserRecord:
        return UserRecord(f"u{n}", (f"telegram:{100000 + n}",), status="approved")

    async def turn() -> None:
        u = pick()
        cid = f"c{u}"
        said = MessageRecord(uuid.uuid4().hex, cid, "user", USER_TEXT, time.time(), author=f"telegram:{100000 + u}")
        stored = asyncio.ensure_future(store.append_messages([said]))
        await store.get_messages(cid, last=50)
        await stored
        answer = MessageRecord(uuid.uuid4().hex, cid, "assistant", ANSWER_TEXT, time.time(), model="gpt-4o-mini",
                               prompt_tokens=420, completion_tokens=130, cost=0.000141)
        await asyncio.gather(
            store.append_messages([answer]),
            store.add_usage(UsageRecord(f"u{u}", cid, "gpt-4o-mini", 420, 130, 0.000141, time.time())),
        )

    return {
        "get_user": lambda: store.get_user(f"u{pick()}"),
        "find_user": lambda: store.find_user(f"telegram:{100000 + pick()}"),
        "put_user": lambda: store.put_user(user(pick())),
        "get_conversation": lambda: store.get_conversation(f"c{pick()}"),
        "list_conversations": lambda: store.list_conversations(f"user:u{pick()}", 10),
        "get_messages last 50": lambda: store.get_messages(f"c{pick()}", last=50),
        "append_messages (1)": lambda: store.append_messages(
            [MessageRecord(uuid.uuid4().hex, f"c{pick()}", "user", USER_TEXT, time.time())]
        ),
        "add_usage": lambda: store.add_usage(UsageRecord(f"u{pick()}", "c", "gpt-4o-mini", 420, 130, 0.0001, T1)),
        "usage_totals": lambda: store.usage_totals(f"u{pick()}", T1 - 86400 * 30),
        "global_usage_totals": lambda: store.global_usage_totals(T1 - 86400 * 30),
        "get_meta": lambda: store.get_meta("global_budget"),
        "set_meta": lambda: store.set_meta("bench", pick()),
        "update_meta": lambda: store.update_meta("counter", lambda old: (old or 0) + 1),
        "turn (message + answer + usage)": turn,
    }


async def time_ops(store: Store, users: int, ops: int) -> dict[str, tuple[float, float]]:
    rng = random.Random(7)
    out: dict[str, tuple[float, float]] = {}
    for name, op in operations(store, users, rng).items():
        for _ in range(max(3, ops // 20)):  # warm-up
            await op()
        samples = []
        for _ in range(ops):
            started = time.perf_counter()
            await op()
            samples.append(time.perf_counter() - started)
        out[name] = percentiles(samples)
    return out


def copy_with_cli(src: Path, url: str) -> tuple[float, int, str]:
    """Run ``ferry store copy`` as a child; its wall time, peak RSS in KiB and its last output lines."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "bots.cli", "store", "copy", str(src), url],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, check=False,
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"ferry store copy failed:\n{proc.stdout}\n{proc.stderr[-2000:]}")
    return elapsed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, proc.stdout.strip()


async def open_store(store: Store) -> Store:
    await store.open()
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--ops", type=int, default=300, help="timed calls of each operation per store")
    parser.add_argument("--copy-only", action="store_true", help="measure ferry store copy, not the operations")
    parser.add_argument("--url", default=os.environ.get("FERRY_TEST_DATABASE_URL", DEFAULT_URL))
    args = parser.parse_args()

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    url = f"{args.url}?schema={schema}"
    parent = Path(tempfile.mkdtemp(prefix="ferry-pg-bench-", dir=disk_folder()))
    data = parent / "data"
    try:
        started = time.perf_counter()
        bulk_load(data, args.users, args.messages)
        asyncio.run(_touch(data, args.users))  # schema.json and usage, as a running store has them
        print(f"TinyDB folder {data} (file system: {file_system(data)}): {args.users} users × {args.messages} "
              f"messages, loaded in {time.perf_counter() - started:.0f} s")
        print(f"PostgreSQL {args.url} schema {schema}; {os.cpu_count()} CPUs, shared with other jobs\n")

        elapsed, rss_kib, out = copy_with_cli(data, url)
        print(f"ferry store copy TinyDB → PostgreSQL: {elapsed:.1f} s, peak memory {rss_kib / 1024:.0f} MiB")
        print("  " + out.replace("\n", "\n  "))
        elapsed2, _, _ = copy_with_cli(data, url)
        print(f"  the same command again (resume; nothing left to copy): {elapsed2:.1f} s\n")

        async def bench() -> None:
            tiny = await open_store(TinyDBStore(data))
            pg = await open_store(PostgresStore(url))
            try:
                results = {"TinyDB": await time_ops(tiny, args.users, args.ops),
                           "PostgreSQL": await time_ops(pg, args.users, args.ops)}
            finally:
                await tiny.close()
                await pg.close()
            header = f"{'operation':<34}{'TinyDB p50':>12}{'p99':>9}{'PostgreSQL p50':>16}{'p99':>9}"
            print(f"{header}   (ms, {args.ops} calls each)")
            for name in results["TinyDB"]:
                t50, t99 = results["TinyDB"][name]
                p50, p99 = results["PostgreSQL"][name]
                print(f"{name:<34}{t50:>12.2f}{t99:>9.2f}{p50:>16.2f}{p99:>9.2f}")

        if not args.copy_only:
            asyncio.run(bench())
    finally:
        shutil.rmtree(parent, ignore_errors=True)
        with psycopg.connect(args.url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def _touch(data: Path, users: int) -> None:
    store = TinyDBStore(data)
    await store.open()
    try:
        for u in range(min(users, 1000)):
            await store.add_usage(UsageRecord(f"u{u}", f"c{u}", "gpt-4o-mini", 420, 130, 0.000141, T1 - 86400))
        await store.set_meta("global_budget", {"daily": 5.0})
    finally:
        await store.close()


if __name__ == "__main__":
    main()
