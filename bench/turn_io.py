"""Files written and fsyncs per turn in the TinyDB store, as production stores a turn.

A turn is what production stores for one exchange: the message's intake record (``core/intake.py``,
before the messenger is told it arrived), the person's message (appended while the conversation's
recent messages are read for the context, ``core/assistant.py``), the answer and its usage written
together, then the intake marks: answered, shown (the final message about to be sent) and
delivered. The store's system calls are counted through its ``FileOps`` seam:
``replace`` is one file written (atomically), a ``write`` to a file that is not temporary one append
to a journal (``core/store/tinydb_journal.py``), ``fsync`` counts file and folder flushes, ``syncfs``
the group commit's flushes of the whole data folder's file system (one per batch of operations).

Runs one chat alone, then 50 chats x 4 turns at once (where the group commit can join folder
flushes of concurrent turns), then 50 new people's first turns at once: each also writes its
person (user record and identity) and its new conversation (record and scope index), files
replaced whole, each flushed before its rename. The data folder is on disk (see ``bench/datadir.py``). CPU ms/turn
is the process's CPU time (its threads', user and system) over the turns: compare it between
versions in the same conditions.

Run: ``.venv/bin/python -m bench.turn_io``
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from bench.datadir import describe, disk_folder
from core.store.base import ConversationRecord, IntakeRecord, MessageRecord, UsageRecord, UserRecord
from core.store.tinydb_files import TEMP_SUFFIX, FileOps
from core.store.tinydb_store import TinyDBStore

T0 = 1_760_000_000.0


class Counts:
    """Thread-safe counters of the store's system calls."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def ops(self) -> FileOps:
        def fsync(fd: int) -> None:
            with self._lock:
                self.calls["fsync"] += 1
            os.fsync(fd)

        def write(fd: int, data: memoryview) -> int:
            if not os.readlink(f"/proc/self/fd/{fd}").endswith(TEMP_SUFFIX):
                with self._lock:
                    self.calls["appends"] += 1  # to a journal (a temporary file's write is a file written)
            return os.write(fd, data)

        def replace(src: str | Path, dst: str | Path) -> None:
            with self._lock:
                self.calls["files"] += 1
            os.replace(src, dst)

        def syncfs(fd: int) -> None:
            with self._lock:
                self.calls["syncfs"] += 1
            os.fsync(fd)  # counted as one flush of the file system; an fsync of its root stands in

        # Stores before the group commit had no syncfs seam.
        if "syncfs" in {f.name for f in dataclasses.fields(FileOps)}:
            return FileOps(write=write, fsync=fsync, replace=replace, syncfs=syncfs)  # type: ignore[call-arg,unused-ignore]
        return FileOps(fsync=fsync, replace=replace)


async def turn(store: TinyDBStore, chat: int, k: int) -> None:
    """One exchange, stored as the intake and the assistant store it."""
    cid, uid = f"c{chat}", f"u{chat}"
    now = T0 + k
    line, key = f"telegram:{chat}", f"telegram:{chat}:{k}"
    await store.record(IntakeRecord(key, line, {"text": f"message {k} from {chat}"}, now, route={"chat": chat}))
    said = MessageRecord(f"q{chat}-{k}", cid, "user", f"message {k} from {chat}", now, author=f"telegram:{chat}")
    stored = asyncio.ensure_future(store.append_messages([said]))
    await store.get_messages(cid, last=50)
    await stored
    answer = MessageRecord(f"a{chat}-{k}", cid, "assistant", "piece " * 6, now, model="m", prompt_tokens=40)
    usage = UsageRecord(uid, cid, "m", 40, 9, 0.0001, now)
    await asyncio.gather(store.append_messages([answer]), store.add_usage(usage))
    await store.mark_answered(line, key, [{"kind": "text", "text": answer.content}])
    await store.mark_shown(line, key, "sending:1")
    await store.mark_delivered(line, key, "42")


async def newcomer(store: TinyDBStore, chat: int) -> None:
    """A new person's first exchange: their user and conversation are written, then the turn."""
    await store.put_user(UserRecord(id=f"u{chat}", identities=(f"telegram:{chat}",), status="approved"))
    await store.put_conversation(ConversationRecord(id=f"c{chat}", scope=f"user:u{chat}", title="t"))
    await turn(store, chat, 0)


async def run(root: Path, chats: int, turns: int, first: bool = False) -> dict[str, float]:
    counts = Counts()
    store = TinyDBStore(root, ops=counts.ops())
    await store.open()
    if not first:
        for chat in range(chats):
            await store.put_user(UserRecord(id=f"u{chat}", identities=(f"telegram:{chat}",)))
            await store.put_conversation(ConversationRecord(id=f"c{chat}", scope=f"user:u{chat}", title="t"))
    counts.calls.clear()
    cpu = time.process_time()
    if first:
        await asyncio.gather(*(newcomer(store, chat) for chat in range(chats)))
    for k in range(turns):
        await asyncio.gather(*(turn(store, chat, k) for chat in range(chats)))
    cpu = time.process_time() - cpu
    await store.close()
    n = chats * (turns + first)
    return {"cpu": 1000 * cpu / n} | {name: counts.calls[name] / n for name in ("files", "appends", "fsync", "syncfs")}


def main() -> None:
    with tempfile.TemporaryDirectory(dir=disk_folder(), prefix="ferry-turn-io-") as tmp:
        print(describe("tinydb", Path(tmp)))
        for chats, turns, first in ((1, 20, False), (50, 4, False), (50, 0, True)):
            r = asyncio.run(run(Path(tmp) / f"run{chats}-{first}", chats, turns, first))
            label = f"{chats:>3} new people, first turns" if first else f"{chats:>3} chats x {turns:<3}"
            print(
                f"{label} files written/turn {r['files']:5.2f}   "
                f"journal appends/turn {r['appends']:5.2f}   "
                f"fsyncs/turn {r['fsync']:5.2f}   syncfs/turn {r['syncfs']:5.2f}   CPU ms/turn {r['cpu']:5.2f}"
            )


if __name__ == "__main__":
    main()
