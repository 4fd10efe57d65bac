"""A WhatsApp import cut short (the process killed between two batches) is finished by the next
import of the same export, not taken for a whole one: every message once, in order."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from core.importer import BATCH, store_transcript
from core.store.base import MessageRecord
from core.store.tinydb_store import TinyDBStore
from core.whatsapp.roles import Transcript, Turn

SCOPE = "user:u1"


def transcript(n: int) -> Transcript:
    start = dt.datetime(2025, 3, 1, 9, 0)
    turns = tuple(
        Turn("user" if i % 2 == 0 else "assistant", f"message {i}", start + dt.timedelta(minutes=i)) for i in range(n)
    )
    return Transcript(turns, fingerprint="f" * 16)


class Killed(Exception):
    """The process died here."""


class DiesAfterBatches(TinyDBStore):
    """The default store, in a process that dies after ``batches`` of the import's message writes."""

    def __init__(self, root: Path, batches: int) -> None:
        super().__init__(root)
        self.left = batches

    async def append_messages(self, messages: list[MessageRecord]) -> list[MessageRecord]:
        if self.left == 0:
            raise Killed
        self.left -= 1
        return await super().append_messages(messages)


async def test_an_import_killed_between_batches_is_finished_by_the_next_one(tmp_path: Path) -> None:
    data = transcript(2 * BATCH + 7)
    dying = DiesAfterBatches(tmp_path, batches=1)
    await dying.open()
    with pytest.raises(Killed):
        await store_transcript(dying, SCOPE, "Old chat", data)
    await dying.close()

    store = TinyDBStore(tmp_path)  # the next run, on the same data folder
    await store.open()
    conv, existed = await store_transcript(store, SCOPE, "Old chat", data)
    assert not existed, "a cut-short import is not reported as already imported"
    stored = await store.get_messages(conv.id)
    assert [m.content for m in stored] == [t.text for t in data.turns]
    assert [c.id for c in await store.list_conversations(SCOPE)] == [conv.id], "no second, partial copy"

    again, existed = await store_transcript(store, SCOPE, "Old chat", data)
    assert existed and again.id == conv.id
    assert len(await store.get_messages(conv.id)) == len(data.turns)
    await store.close()


async def test_an_import_killed_before_its_first_message_leaves_no_empty_chat_behind(tmp_path: Path) -> None:
    data = transcript(10)
    dying = DiesAfterBatches(tmp_path, batches=0)
    await dying.open()
    with pytest.raises(Killed):
        await store_transcript(dying, SCOPE, "Old chat", data)
    await dying.close()

    store = TinyDBStore(tmp_path)
    await store.open()
    conv, existed = await store_transcript(store, SCOPE, "Old chat", data)
    assert not existed
    assert [m.content for m in await store.get_messages(conv.id)] == [t.text for t in data.turns]
    assert len(await store.list_conversations(SCOPE)) == 1
    await store.close()
