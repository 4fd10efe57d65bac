"""A turn's reads started early answer only reads of the same arguments, once; a store whose
reads run on the event loop gets none started early."""

from __future__ import annotations

import asyncio

import pytest

from core.readahead import ReadAhead
from core.store.base import ConversationRecord, MessageRecord
from core.store.memory import MemoryStore


class RemoteStore(MemoryStore):
    """As the PostgreSQL store: reads leave the process, so starting them early saves time."""

    READS_ON_LOOP = False


STORES = pytest.mark.parametrize("kind", [RemoteStore, MemoryStore])


@STORES
async def test_a_started_read_answers_once_and_other_arguments_read_the_store(kind: type[MemoryStore]) -> None:
    store = kind()
    await store.open()
    await store.put_conversation(ConversationRecord(id="c1", scope="user:a", title="t", created_at=1, updated_at=1))
    reads = ReadAhead(store)
    reads.conversations("user:a")
    reads.messages("c1", 10)
    await store.append_messages([MessageRecord(id="m1", conversation_id="c1", role="user", content="hi", created_at=2)])

    # Started before the message was stored, the read may or may not see it; a second read of the
    # same arguments is not answered by it again, but by the store.
    await reads.get_messages("c1", 10)
    assert [m.id for m in await reads.get_messages("c1", 10)] == ["m1"]
    assert [c.id for c in await reads.list_conversations("user:a", 1)] == ["c1"]
    assert await reads.list_conversations("user:b", 1) == []
    assert await reads.get_meta("nothing") is None
    reads.close()


@STORES
async def test_unused_reads_are_dropped_when_the_turn_ends(kind: type[MemoryStore]) -> None:
    store = kind()
    await store.open()
    reads = ReadAhead(store)
    reads.conversations("user:a")
    reads.messages("gone", 10)
    reads.meta("k")
    reads.close()
    await store.set_meta("k", 1)
    assert await reads.get_meta("k") == 1  # read anew: the started one was dropped


@STORES
async def test_a_meta_value_is_read_once_a_turn(kind: type[MemoryStore]) -> None:
    store = kind()
    await store.open()
    await store.set_meta("k", 1)
    reads = ReadAhead(store)
    reads.meta("k")
    assert await reads.get_meta("k") == 1
    await store.set_meta("k", 2)
    assert await reads.get_meta("k") == 1  # the budget check and the alert after the answer agree
    reads.close()


async def test_reads_on_the_loop_are_not_started_early_and_never_give_way() -> None:
    """Started early, a read on the loop is a task the turn waits a whole loop round for."""
    store = MemoryStore()
    await store.open()
    await store.set_meta("k", 1)
    await store.put_conversation(ConversationRecord(id="c1", scope="user:a", title="t", created_at=1, updated_at=1))
    reads = ReadAhead(store)
    reads.meta("k")
    reads.conversations("user:a")
    reads.messages("c1", 10)
    others: list[str] = []
    asyncio.get_running_loop().call_soon(others.append, "another turn's step")
    assert await reads.get_meta("k") == 1
    assert [c.id for c in await reads.list_conversations("user:a", 1)] == ["c1"]
    assert await reads.get_messages("c1", 10) == []
    assert others == [], "the reads gave the loop away"
    remote = ReadAhead(RemoteStore())
    remote.meta("k")
    await remote.get_meta("k")
    assert others == ["another turn's step"], "a started read is waited for"
    reads.close()
    remote.close()
