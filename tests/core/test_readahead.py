"""A turn's reads started early answer only reads of the same arguments, once."""

from __future__ import annotations

from core.readahead import ReadAhead
from core.store.base import ConversationRecord, MessageRecord
from core.store.memory import MemoryStore


async def test_a_started_read_answers_once_and_other_arguments_read_the_store() -> None:
    store = MemoryStore()
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


async def test_unused_reads_are_dropped_when_the_turn_ends() -> None:
    store = MemoryStore()
    await store.open()
    reads = ReadAhead(store)
    reads.conversations("user:a")
    reads.messages("gone", 10)
    reads.meta("k")
    reads.close()
    await store.set_meta("k", 1)
    assert await reads.get_meta("k") == 1  # read anew: the started one was dropped


async def test_a_meta_value_is_read_once_a_turn() -> None:
    store = MemoryStore()
    await store.open()
    await store.set_meta("k", 1)
    reads = ReadAhead(store)
    reads.meta("k")
    assert await reads.get_meta("k") == 1
    await store.set_meta("k", 2)
    assert await reads.get_meta("k") == 1  # the budget check and the alert after the answer agree
    reads.close()
