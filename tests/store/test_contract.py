"""One contract suite, run against every store backend (MemoryStore is the reference)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from core.store.base import (
    ConversationRecord,
    MessageRecord,
    Role,
    Store,
    UsageRecord,
    UserRecord,
)
from core.store.memory import MemoryStore
from core.store.postgres import PostgresStore
from core.store.tinydb_store import TinyDBStore
from tests.store.pg import PG_URL, pg_schema

DAY = 86400.0
T0 = 20000 * DAY  # a UTC midnight

Reopen = Callable[[], Awaitable[Store]]


@pytest.fixture(params=["memory", "tinydb", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Store, Reopen]]:
    """A fresh store and a function that closes it and opens it again (same data for TinyDB and
    PostgreSQL, which gets a schema of its own, dropped after the test)."""
    opened: list[Store] = []

    with pg_schema() as schema:

        async def make() -> Store:
            store: Store
            if request.param == "memory":
                store = MemoryStore()
            elif request.param == "postgres":
                store = PostgresStore(PG_URL, schema=schema)
            else:
                store = TinyDBStore(tmp_path / "data")
            await store.open()
            opened.append(store)
            return store

        async def reopen() -> Store:
            if request.param == "memory":
                return opened[-1]
            await opened[-1].close()
            return await make()

        yield await make(), reopen
        await opened[-1].close()


@pytest.fixture
def store(backend: tuple[Store, Reopen]) -> Store:
    return backend[0]


def msg(cid: str, n: int, role: Role = "user") -> MessageRecord:
    return MessageRecord(id=f"{cid}-m{n}", conversation_id=cid, role=role, content=f"text {n}", created_at=T0 + n)


def conv(cid: str, scope: str, updated_at: float = T0, **kw: Any) -> ConversationRecord:
    return ConversationRecord(id=cid, scope=scope, created_at=T0, updated_at=updated_at, **kw)


# users and identities


async def test_put_get_find_user(store: Store) -> None:
    user = UserRecord(
        id="u1",
        identities=("telegram:1", "signal:abc"),
        display_name="Ani",
        status="approved",
        lang="id",
        created_at=T0,
        extra={"tz": "Asia/Jakarta", "nested": {"a": [1, 2]}},
    )
    await store.put_user(user)
    assert await store.get_user("u1") == user
    assert await store.find_user("telegram:1") == user
    assert await store.find_user("signal:abc") == user
    assert await store.get_user("nobody") is None
    assert await store.find_user("telegram:2") is None


async def test_put_user_replaces_identities(store: Store) -> None:
    await store.put_user(UserRecord(id="u1", identities=("telegram:1", "signal:a")))
    await store.put_user(UserRecord(id="u1", identities=("telegram:1", "signal:b")))
    assert await store.find_user("signal:a") is None
    found = await store.find_user("signal:b")
    assert found is not None and found.id == "u1"


async def test_identity_repointed_to_another_user(store: Store) -> None:
    await store.put_user(UserRecord(id="u1", identities=("telegram:1", "signal:a")))
    await store.put_user(UserRecord(id="u2", identities=("signal:a",)))
    found = await store.find_user("signal:a")
    assert found is not None and found.id == "u2"
    # Re-putting the first user without it must not take it from the second.
    await store.put_user(UserRecord(id="u1", identities=("telegram:1",)))
    found = await store.find_user("signal:a")
    assert found is not None and found.id == "u2"


async def test_list_users_oldest_first(store: Store) -> None:
    for i, created in enumerate([3.0, 1.0, 2.0]):
        await store.put_user(UserRecord(id=f"u{i}", created_at=created))
    assert [u.id for u in await store.list_users()] == ["u1", "u2", "u0"]


async def test_delete_user_removes_everything_of_it(store: Store) -> None:
    await store.put_user(UserRecord(id="u1", identities=("telegram:1",)))
    await store.put_user(UserRecord(id="u2", identities=("telegram:2",)))
    await store.put_conversation(conv("c1", "user:u1"))
    await store.append_messages([msg("c1", 0)])
    await store.put_conversation(conv("c2", "user:u2"))
    await store.append_messages([msg("c2", 0)])
    await store.add_usage(UsageRecord("u1", "c1", "m", 10, 5, 0.5, T0 + 5))
    await store.add_usage(UsageRecord("u2", "c2", "m", 1, 1, 0.1, T0 + 5))

    await store.delete_user("u1")

    assert await store.get_user("u1") is None
    assert await store.find_user("telegram:1") is None
    assert await store.get_conversation("c1") is None
    assert await store.get_messages("c1") == []
    assert await store.list_conversations("user:u1") == []
    assert (await store.usage_totals("u1", T0)).tokens == 0
    assert (await store.global_usage_totals(T0)).tokens == 2
    # The other user is untouched.
    assert (await store.find_user("telegram:2")) is not None
    assert [m.content for m in await store.get_messages("c2")] == ["text 0"]
    assert [u.id for u in await store.list_users()] == ["u2"]
    await store.delete_user("u1")  # deleting again is harmless


# conversations


async def test_put_get_conversation(store: Store) -> None:
    c = conv("c1", "user:u1", title="Trip", model="gpt-4o", source="whatsapp:abc")
    await store.put_conversation(c)
    assert await store.get_conversation("c1") == c
    assert await store.get_conversation("nope") is None


async def test_list_conversations_by_updated_at_with_limit(store: Store) -> None:
    for i, at in enumerate([5.0, 9.0, 1.0, 7.0]):
        await store.put_conversation(conv(f"c{i}", "user:u1", updated_at=T0 + at))
    await store.put_conversation(conv("other", "user:u2", updated_at=T0 + 100))
    assert [c.id for c in await store.list_conversations("user:u1")] == ["c1", "c3", "c0", "c2"]
    assert [c.id for c in await store.list_conversations("user:u1", limit=2)] == ["c1", "c3"]
    assert [c.id for c in await store.list_conversations("user:u2")] == ["other"]
    assert await store.list_conversations("group:none") == []


async def test_append_moves_conversation_to_the_top(store: Store) -> None:
    await store.put_conversation(conv("a", "user:u1", updated_at=T0 + 10))
    await store.put_conversation(conv("b", "user:u1", updated_at=T0 + 20))
    await store.append_messages([msg("a", 50)])
    assert [c.id for c in await store.list_conversations("user:u1")] == ["a", "b"]
    a = await store.get_conversation("a")
    assert a is not None and a.updated_at == T0 + 50 and a.message_count == 1


async def test_put_conversation_changing_scope(store: Store) -> None:
    await store.put_conversation(conv("c1", "user:u1"))
    await store.put_conversation(conv("c1", "group:g1"))
    assert await store.list_conversations("user:u1") == []
    assert [c.id for c in await store.list_conversations("group:g1")] == ["c1"]


async def test_move_conversations(store: Store) -> None:
    await store.put_conversation(conv("c1", "user:u1", updated_at=T0 + 1))
    await store.put_conversation(conv("c2", "user:u1", updated_at=T0 + 2))
    await store.put_conversation(conv("c3", "user:u2", updated_at=T0 + 3))
    await store.append_messages([msg("c1", 0)])
    assert await store.move_conversations("user:u1", "user:u2") == 2
    assert await store.list_conversations("user:u1") == []
    assert {c.id for c in await store.list_conversations("user:u2")} == {"c1", "c2", "c3"}
    moved = await store.get_conversation("c1")
    assert moved is not None and moved.scope == "user:u2"
    assert [m.content for m in await store.get_messages("c1")] == ["text 0"]
    assert await store.move_conversations("user:u1", "user:u2") == 0


async def test_find_conversation_by_source(store: Store) -> None:
    await store.put_conversation(conv("c1", "user:u1", source="whatsapp:abc"))
    await store.put_conversation(conv("c2", "user:u1"))
    found = await store.find_conversation_by_source("user:u1", "whatsapp:abc")
    assert found is not None and found.id == "c1"
    assert await store.find_conversation_by_source("user:u2", "whatsapp:abc") is None
    assert await store.find_conversation_by_source("user:u1", "whatsapp:zzz") is None
    await store.move_conversations("user:u1", "user:u2")
    found = await store.find_conversation_by_source("user:u2", "whatsapp:abc")
    assert found is not None and found.id == "c1"


# messages


async def test_append_assigns_seq_and_counts(store: Store) -> None:
    await store.put_conversation(conv("c1", "user:u1"))
    first = await store.append_messages([msg("c1", 0), msg("c1", 1, role="assistant")])
    assert [m.seq for m in first] == [0, 1]
    second = await store.append_messages([msg("c1", 2)])
    assert [m.seq for m in second] == [2]
    assert await store.append_messages([]) == []
    got = await store.get_messages("c1")
    assert [(m.seq, m.role, m.content) for m in got] == [
        (0, "user", "text 0"),
        (1, "assistant", "text 1"),
        (2, "user", "text 2"),
    ]
    c = await store.get_conversation("c1")
    assert c is not None and c.message_count == 3 and c.updated_at == T0 + 2


async def test_get_last_messages(store: Store) -> None:
    await store.put_conversation(conv("c1", "user:u1"))
    for i in range(10):
        await store.append_messages([msg("c1", i)])
    assert [m.seq for m in await store.get_messages("c1", last=3)] == [7, 8, 9]
    assert [m.seq for m in await store.get_messages("c1", last=50)] == list(range(10))
    assert await store.get_messages("unknown") == []


async def test_update_message(store: Store) -> None:
    await store.put_conversation(conv("c1", "user:u1"))
    [user, pending] = await store.append_messages(
        [msg("c1", 0), MessageRecord("a0", "c1", "assistant", "", T0 + 1, status="pending")]
    )
    done = MessageRecord(
        "a0", "c1", "assistant", "Halo!", T0 + 1, seq=pending.seq, model="m", prompt_tokens=3,
        completion_tokens=2, cost=0.01,
    )
    await store.update_message(done)
    assert await store.get_messages("c1") == [user, done]
    await store.update_message(MessageRecord("x", "c1", "user", "ghost", T0, seq=7))  # absent: no-op
    assert len(await store.get_messages("c1")) == 2


async def test_truncate_messages(store: Store) -> None:
    await store.put_conversation(conv("c1", "user:u1"))
    await store.append_messages([msg("c1", i) for i in range(5)])
    await store.truncate_messages("c1", 3)
    assert [m.seq for m in await store.get_messages("c1")] == [0, 1, 2]
    c = await store.get_conversation("c1")
    assert c is not None and c.message_count == 3
    [again] = await store.append_messages([msg("c1", 9)])
    assert again.seq == 3
    await store.truncate_messages("c1", 0)
    assert await store.get_messages("c1") == []
    [first] = await store.append_messages([msg("c1", 10)])
    assert first.seq == 0


async def test_many_messages_across_chunks(store: Store) -> None:
    await store.put_conversation(conv("c1", "user:u1"))
    for i in range(0, 600, 7):
        await store.append_messages([msg("c1", j) for j in range(i, min(i + 7, 600))])
    got = await store.get_messages("c1")
    assert [m.seq for m in got] == list(range(600))
    assert [m.content for m in got] == [f"text {i}" for i in range(600)]
    assert [m.seq for m in await store.get_messages("c1", last=300)] == list(range(300, 600))
    await store.update_message(MessageRecord("x", "c1", "user", "edited", T0, seq=300))
    await store.truncate_messages("c1", 301)
    got = await store.get_messages("c1", last=2)
    assert [(m.seq, m.content) for m in got] == [(299, "text 299"), (300, "edited")]
    [nxt] = await store.append_messages([msg("c1", 1000)])
    assert nxt.seq == 301


# usage


async def test_usage_totals_by_day_and_model(store: Store) -> None:
    await store.add_usage(UsageRecord("u1", "c1", "gpt-4o", 100, 50, 0.25, T0 - 10))  # the day before
    await store.add_usage(UsageRecord("u1", "c1", "gpt-4o", 10, 5, 0.5, T0 + 10))
    await store.add_usage(UsageRecord("u1", "c1", "gpt-4o", 20, 10, 0.5, T0 + DAY + 10))
    await store.add_usage(UsageRecord("u1", "c1", "mini", 1, 2, 0.125, T0 + 20))
    await store.add_usage(UsageRecord("u2", "c2", "mini", 7, 7, 1.0, T0 + 30))

    today = await store.usage_totals("u1", T0)
    assert (today.prompt_tokens, today.completion_tokens) == (31, 17)
    assert today.tokens == 48
    assert today.cost == pytest.approx(1.125)
    assert today.by_model["gpt-4o"][:2] == (30, 15)
    assert today.by_model["mini"] == pytest.approx((1, 2, 0.125))
    assert (await store.usage_totals("u1", T0 + DAY)).tokens == 30
    assert (await store.usage_totals("u1", T0 - DAY)).tokens == 198
    assert (await store.usage_totals("nobody", T0)).tokens == 0

    everyone = await store.global_usage_totals(T0)
    assert everyone.tokens == 48 + 14
    assert everyone.by_model["mini"][:2] == (8, 9)
    assert everyone.cost == pytest.approx(2.125)


# meta


async def test_meta_set_get_delete(store: Store) -> None:
    assert await store.get_meta("claim_code") is None
    await store.set_meta("claim_code", "123456")
    await store.set_meta("budget", {"daily": 5.0, "models": ["a", "b"]})
    assert await store.get_meta("claim_code") == "123456"
    assert await store.get_meta("budget") == {"daily": 5.0, "models": ["a", "b"]}
    await store.set_meta("claim_code", "654321")
    assert await store.get_meta("claim_code") == "654321"
    await store.set_meta("claim_code", None)
    assert await store.get_meta("claim_code") is None
    await store.set_meta("never_set", None)


# reopen


async def test_reopen_keeps_everything(backend: tuple[Store, Reopen]) -> None:
    store, reopen = backend
    user = UserRecord(id="u1", identities=("telegram:1",), status="approved", created_at=T0)
    await store.put_user(user)
    await store.put_conversation(conv("c1", "user:u1", title="hello"))
    await store.append_messages([msg("c1", 0), msg("c1", 1, role="assistant")])
    await store.add_usage(UsageRecord("u1", "c1", "m", 3, 4, 0.5, T0 + 1))
    await store.set_meta("k", [1, 2])

    again = await reopen()
    assert await again.find_user("telegram:1") == user
    [c] = await again.list_conversations("user:u1")
    assert (c.id, c.title, c.message_count) == ("c1", "hello", 2)
    assert [m.content for m in await again.get_messages("c1")] == ["text 0", "text 1"]
    assert (await again.usage_totals("u1", T0)).tokens == 7
    assert await again.get_meta("k") == [1, 2]
    [nxt] = await again.append_messages([msg("c1", 2)])
    assert nxt.seq == 2
