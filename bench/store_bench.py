"""How long storing one turn takes in the TinyDB store, and how many bytes it writes.

One turn is what production stores for one exchange: the intake ``record`` of the arriving message
(``core/intake.py``), ``append_messages`` of the person's message (~80 characters), started while
the conversation's last messages are read for the context (``get_messages``, ``core/assistant.py``),
then the answer (~600 characters, tokens, cost) appended together with its ``add_usage``, then the
intake marks ``mark_answered`` (with the answer's text), ``mark_shown`` and ``mark_delivered``.
Every write is durable when its call returns (fsync + rename + folder fsync, or an append to a
journal, flushed in a group commit). ``bench/turn_io.py`` counts files and fsyncs per turn.

Scenarios: 10, 1,000 and 100,000 users with one 100-message conversation each (a turn goes to a
random user's conversation), and one conversation of 10,000 messages. The stores are filled by a
bulk loader that writes the backend's own on-disk layout with the backend's own layout and
serialisation functions (no fsync, so it is fast), then opened with ``TinyDBStore``.

Bytes per turn come from ``/proc/self/io``: ``wchar`` (bytes handed to write()) and
``write_bytes`` (bytes sent to the storage device, whole file-system blocks).

The last column is one bare durable file replacement (40 KB, fsync, rename, folder fsync) timed
just before the scenario: it shows how much of a turn is the disk's own floor.

Usage: ``python bench/store_bench.py [--quick] [--turns N] [--dir /tmp]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.store.base import ConversationRecord, IntakeRecord, MessageRecord, UsageRecord, UserRecord
from core.store.tinydb_files import FileOps, encode
from core.store.tinydb_layout import (
    CHUNK_BYTES,
    CHUNK_SIZE,
    Layout,
    chunk_lines,
    conversation_tables,
    identity_tables,
    scope_tables,
    split_chunks,
    user_tables,
)
from core.store.tinydb_store import TinyDBStore

USER_TEXT = "Tolong jelaskan bedanya Telegram dan Signal untuk keamanan chat keluarga saya ya."
ANSWER_TEXT = (
    "Singkatnya: Signal mengenkripsi semua chat ujung-ke-ujung secara bawaan, sedangkan Telegram hanya "
    "melakukannya di 'Secret Chat'. Telegram menyimpan chat biasa di servernya agar bisa disinkronkan "
    "ke banyak perangkat. Untuk keluarga, keduanya mudah dipakai; pilih Signal bila privasi paling "
    "penting, Telegram bila Anda butuh grup besar, bot, dan riwayat di banyak perangkat sekaligus. "
    "Apa pun pilihannya, aktifkan kunci layar dan verifikasi dua langkah."
)
PLACEHOLDER = "CONVERSATION-PLACEHOLDER"
T0 = 1_767_225_600.0  # 2026-01-01 UTC


def message(cid: str, seq: int) -> MessageRecord:
    user = seq % 2 == 0
    return MessageRecord(
        id=f"{cid}-m{seq}",
        conversation_id=cid,
        role="user" if user else "assistant",
        content=USER_TEXT if user else ANSWER_TEXT,
        created_at=T0 + seq,
        seq=seq,
        author=None,
        model=None if user else "gpt-4o-mini",
        prompt_tokens=0 if user else 420,
        completion_tokens=0 if user else 130,
        cost=0.0 if user else 0.000141,
    )


def write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def chunk_bytes_by_template(messages_per_conversation: int) -> list[tuple[int, bytes]]:
    """Each chunk file of one conversation, serialised once with a placeholder id to substitute."""
    msgs = [message(PLACEHOLDER, s) for s in range(messages_per_conversation)]
    return [(chunk[0].seq, chunk_lines(chunk)) for chunk in split_chunks(msgs)]


def bulk_load(root: Path, users: int, messages_each: int) -> list[str]:
    """Write ``users`` users with one conversation of ``messages_each`` messages; returns conv ids."""
    layout = Layout(root)
    template = chunk_bytes_by_template(messages_each)
    identities: dict[Path, list[tuple[str, str]]] = {}
    conv_ids = []
    for u in range(users):
        uid, cid, ident = f"u{u}", f"c{u}", f"telegram:{100000 + u}"
        scope = f"user:{uid}"
        write_file(layout.user_file(uid), encode(user_tables(UserRecord(uid, (ident,), status="approved"))))
        identities.setdefault(layout.identity_file(ident), []).append((ident, uid))
        conv = ConversationRecord(
            cid, scope, created_at=T0, updated_at=T0 + messages_each - 1, message_count=messages_each
        )
        write_file(layout.conversation_file(cid), encode(conversation_tables(conv)))
        write_file(layout.scope_file(scope), encode(scope_tables([conv])))
        for first, data in template:
            write_file(layout.chunk_file(cid, first), data.replace(PLACEHOLDER.encode(), cid.encode()))
        conv_ids.append(cid)
    for path, entries in identities.items():
        write_file(path, encode(identity_tables(entries)))
    return conv_ids


def proc_io() -> dict[str, int]:
    with open("/proc/self/io") as f:
        return {k: int(v) for k, v in (line.split(": ") for line in f)}


async def measure(root: Path, conv_ids: list[str], turns: int, warmup: int) -> dict[str, float]:
    store = TinyDBStore(root)
    t = time.perf_counter()
    await store.open()
    open_s = time.perf_counter() - t
    # Faithfulness check: the bulk-loaded files read back through the store.
    got = await store.get_messages(conv_ids[0], last=2)
    assert got and got[-1].conversation_id == conv_ids[0], "bulk layout not readable"
    rng = random.Random(7)
    times: list[float] = []
    before = proc_io()
    for i in range(warmup + turns):
        if i == warmup:
            before = proc_io()
        cid = rng.choice(conv_ids)
        now = T0 + 10_000_000 + i
        t = time.perf_counter()
        line, key = f"telegram:{cid}", f"telegram:{i}"
        await store.record(IntakeRecord(key, line, {"text": USER_TEXT}, now, route={"chat": cid}))
        said = asyncio.ensure_future(store.append_messages([MessageRecord(f"q{i}", cid, "user", USER_TEXT, now)]))
        await store.get_messages(cid, last=50)
        await said
        answer = MessageRecord(
            f"a{i}",
            cid,
            "assistant",
            ANSWER_TEXT,
            now,
            model="gpt-4o-mini",
            prompt_tokens=420,
            completion_tokens=130,
            cost=0.000141,
        )
        usage = UsageRecord(f"u{i % 10}", cid, "gpt-4o-mini", 420, 130, 0.000141, now)
        await asyncio.gather(store.append_messages([answer]), store.add_usage(usage))
        await store.mark_answered(line, key, [{"kind": "text", "text": ANSWER_TEXT}])
        await store.mark_shown(line, key, "sending:1")
        await store.mark_delivered(line, key, "42")
        if i >= warmup:
            times.append(time.perf_counter() - t)
    after = proc_io()
    await store.close()
    times.sort()
    return {
        "open_s": open_s,
        "median_ms": statistics.median(times) * 1000,
        "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))] * 1000,
        "wchar": (after["wchar"] - before["wchar"]) / turns,
        "write_bytes": (after["write_bytes"] - before["write_bytes"]) / turns,
    }


def bare_write_ms(root: Path, n: int = 50) -> tuple[float, float]:
    """Median and p99 of one bare durable 40 KB file replacement: the disk's own floor right now."""
    ops = FileOps()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        ops.atomic_write(root / "calibration.json", b"x" * 40_000)
        times.append(time.perf_counter() - t)
    (root / "calibration.json").unlink()
    times.sort()
    return statistics.median(times) * 1000, times[int(n * 0.99)] * 1000


def du(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small version: 10/100/1,000 users, 2,000 msgs")
    parser.add_argument("--turns", type=int, default=None, help="measured turns per scenario")
    parser.add_argument("--dir", default="/tmp", help="where to create the temporary store folders")
    args = parser.parse_args()
    user_counts = [10, 100, 1000] if args.quick else [10, 1000, 100_000]
    long_conversation = 2000 if args.quick else 10_000
    turns = args.turns or (200 if args.quick else 1000)
    scenarios = [(f"{n:,} users x 100 msgs", n, 100) for n in user_counts]
    scenarios.append((f"1 conversation of {long_conversation:,} msgs", 1, long_conversation))

    print(
        f"one turn = record, append_messages([user]) with get_messages(last=50), then append_messages([answer]) "
        f"with add_usage, then mark_answered, mark_shown, mark_delivered; "
        f"{turns} turns measured after 20 warm-up turns; "
        f"chunks of up to {CHUNK_SIZE} messages or {CHUNK_BYTES // 1024} KiB"
    )
    print(
        f"{'scenario':<34} {'load s':>7} {'store MB':>9} {'open s':>7} {'median ms':>10} {'p99 ms':>8} "
        f"{'wchar B/turn':>13} {'disk B/turn':>12} {'1 bare write med/p99 ms':>24}"
    )
    results = {}
    for name, users, msgs in scenarios:
        root = Path(tempfile.mkdtemp(prefix="ferry-store-bench-", dir=args.dir))
        try:
            t = time.perf_counter()
            conv_ids = bulk_load(root, users, msgs)
            # Flush the loader's dirty pages now, or their writeback competes with the measured fsyncs.
            os.sync()
            load_s = time.perf_counter() - t
            size_mb = du(root) / 1e6
            floor = bare_write_ms(root)
            r = asyncio.run(measure(root, conv_ids, turns, warmup=20))
            results[name] = r
            print(
                f"{name:<34} {load_s:>7.1f} {size_mb:>9.1f} {r['open_s']:>7.2f} "
                f"{r['median_ms']:>10.2f} {r['p99_ms']:>8.2f} "
                f"{r['wchar']:>13,.0f} {r['write_bytes']:>12,.0f} {floor[0]:>15.2f} /{floor[1]:>6.2f}",
                flush=True,
            )
        finally:
            shutil.rmtree(root, ignore_errors=True)
    small, large = results[scenarios[0][0]], results[scenarios[len(user_counts) - 1][0]]
    longest = results[scenarios[-1][0]]
    print(
        f"p99 at {user_counts[-1]:,} users / p99 at {user_counts[0]} users = "
        f"{large['p99_ms'] / small['p99_ms']:.2f} (target <= 1.5, and p99 < 10 ms: "
        f"{'met' if large['p99_ms'] < 10 and large['p99_ms'] <= 1.5 * small['p99_ms'] else 'NOT met'})"
    )
    print(
        f"p99 for the {long_conversation:,}-message conversation = {longest['p99_ms']:.2f} ms "
        f"(target < 20 ms: {'met' if longest['p99_ms'] < 20 else 'NOT met'})"
    )


if __name__ == "__main__":
    os.umask(0o077)
    main()
