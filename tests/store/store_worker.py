"""A separate process that writes to a store (TinyDB folder or PostgreSQL URL) for the crash and concurrency tests.

Usage: ``python store_worker.py crash <data_dir>`` appends turns forever and prints every
acknowledged write (``ack <seq> <content>``, ``upd <seq> <content>``) and announces each
truncation before it starts (``trunc <seq>``); the test kills it.
``python store_worker.py intake <data_dir>`` records messages in three chats' lines forever, marking
every second one answered and every third delivered, and prints each acknowledged step
(``rec <key> <chat> <seq>``, ``ans <key> <chat>``, ``del <key> <chat>``).
``python store_worker.py concurrent <data_dir> <name> <rounds> <go_file>`` waits for ``go_file``,
then writes ``rounds`` times to a shared and to its own conversation, meta, usage and users.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from core.store.base import (
    ConversationRecord,
    IntakeRecord,
    MessageRecord,
    Store,
    UsageRecord,
    UserRecord,
)
from core.store.postgres import PostgresStore, is_postgres_url
from core.store.tinydb_store import TinyDBStore

CRASH_CONVERSATION = "crash-conv"
SHARED_CONVERSATION = "shared"
DAY = 86400.0


def say(line: str) -> None:
    # One write per line: a killed process never leaves half an acknowledgement that looks whole.
    os.write(1, (line + "\n").encode())


def open_target(target: str) -> Store:
    """A TinyDB data folder, or a ``postgresql://`` URL (with ``?schema=``) for the PostgreSQL runs."""
    if is_postgres_url(target):
        return PostgresStore(target)
    return TinyDBStore(Path(target), chunk_size=16)


async def crash(data_dir: str) -> None:
    store = open_target(data_dir)
    await store.open()
    if await store.get_conversation(CRASH_CONVERSATION) is None:
        await store.put_conversation(ConversationRecord(id=CRASH_CONVERSATION, scope="user:crash"))
    pid = os.getpid()
    k = 0
    while True:
        k += 1
        now = time.time()
        user = MessageRecord(f"{pid}-{k}-u", CRASH_CONVERSATION, "user", f"q {pid}:{k}", now)
        pending = MessageRecord(f"{pid}-{k}-a", CRASH_CONVERSATION, "assistant", "", now, status="pending")
        stored = await store.append_messages([user, pending])
        say(f"ack {stored[0].seq} {stored[0].content}")
        final = MessageRecord(
            pending.id, CRASH_CONVERSATION, "assistant", f"a {pid}:{k}", now, seq=stored[1].seq
        )
        await store.update_message(final)
        say(f"upd {final.seq} {final.content}")
        if k % 5 == 0:
            await store.set_meta(f"crash:{pid}", k)
            await store.add_usage(UsageRecord("crash", CRASH_CONVERSATION, "m", 1, 1, 0.0, now))
            await store.put_user(UserRecord(id="crash", identities=(f"telegram:{k}",)))
        if k % 23 == 0:
            # A /retry now and then: truncate the last answer and append it again.
            say(f"trunc {stored[1].seq}")
            await store.truncate_messages(CRASH_CONVERSATION, stored[1].seq)
            [again] = await store.append_messages([final])
            say(f"ack {again.seq} {again.content}")


async def intake(data_dir: str) -> None:
    store = open_target(data_dir)
    await store.open()
    pid = os.getpid()
    answer = [{"type": "final", "text": "a", "buttons": [], "interrupted": False, "streamed": True}]
    k = 0
    while True:
        k += 1
        chat, key = f"telegram:{k % 3}", f"telegram:{pid}-{k}"
        rec = await store.record(IntakeRecord(key, chat, {"text": key}, time.time()))
        assert rec is not None
        say(f"rec {key} {chat} {rec.seq}")
        if k % 2 == 0:
            await store.mark_answered(chat, key, answer)
            say(f"ans {key} {chat}")
        if k % 3 == 0:
            await store.mark_delivered(chat, key, str(k))
            say(f"del {key} {chat}")


def wait_for(path: Path) -> None:
    """Block until ``path`` exists (the start signal, so both writers really overlap)."""
    while not path.exists():
        time.sleep(0.001)


async def concurrent(data_dir: str, name: str, rounds: int, go_file: Path) -> None:
    store = open_target(data_dir)
    await store.open()
    await store.put_conversation(ConversationRecord(id=SHARED_CONVERSATION, scope="group:shared"))
    own = f"own-{name}"
    await store.put_conversation(ConversationRecord(id=own, scope=f"user:{name}"))
    await asyncio.to_thread(wait_for, go_file)
    for i in range(rounds):
        text = f"{name}:{i}"
        await store.append_messages([MessageRecord(f"s-{text}", SHARED_CONVERSATION, "user", text, 1.0 + i)])
        await store.append_messages([MessageRecord(f"o-{text}", own, "user", text, 1.0 + i)])
        await store.set_meta(text, i)
        await store.add_usage(UsageRecord(name, own, "m", 2, 3, 0.5, 20000 * DAY + i))
        await store.put_user(UserRecord(id=f"{name}-u{i}", identities=(f"telegram:{name}{i}",)))
    await store.close()
    say("done")


def main(argv: list[str]) -> None:
    mode, data_dir = argv[0], argv[1]
    if mode == "crash":
        asyncio.run(crash(data_dir))
    elif mode == "intake":
        asyncio.run(intake(data_dir))
    else:
        asyncio.run(concurrent(data_dir, argv[2], int(argv[3]), Path(argv[4])))


if __name__ == "__main__":
    main(sys.argv[1:])
