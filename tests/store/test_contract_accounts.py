"""The store methods behind account linking, budgets and operator tasks, on every backend."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from core.store.base import Store, StoreError, UsageRecord, UserRecord
from core.store.tinydb_store import TinyDBStore
from tests.store import test_contract as contract

# The same backends as the main contract suite.
backend = contract.backend
store = contract.store
Reopen = contract.Reopen
DAY = contract.DAY
T0 = contract.T0
conv = contract.conv
msg = contract.msg


def usage(user: str, model: str, prompt: int, completion: int, cost: float, at: float) -> UsageRecord:
    return UsageRecord(user, "c", model, prompt, completion, cost, at)


async def test_update_meta_replaces_the_value_and_returns_it(backend: tuple[Store, Reopen]) -> None:
    store, reopen = backend
    assert await store.update_meta("counter", lambda old: (old or 0) + 1) == 1
    assert await store.update_meta("counter", lambda old: (old or 0) + 1) == 2

    def add(old: Any) -> Any:
        old = old or {}
        old["b"] = [1, 2]
        return old

    await store.set_meta("dict", {"a": 1})
    assert await store.update_meta("dict", add) == {"a": 1, "b": [1, 2]}
    store = await reopen()
    assert await store.get_meta("counter") == 2
    assert await store.get_meta("dict") == {"a": 1, "b": [1, 2]}
    assert await store.update_meta("dict", lambda old: None) is None
    assert await store.get_meta("dict") is None


async def test_update_meta_gives_the_change_its_own_copy(store: Store) -> None:
    await store.set_meta("k", {"list": [1]})

    def mutate_then_fail(old: Any) -> Any:
        old["list"].append(2)
        raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError):
        await store.update_meta("k", mutate_then_fail)
    assert await store.get_meta("k") == {"list": [1]}


async def test_move_usage_merges_into_the_other_user(backend: tuple[Store, Reopen]) -> None:
    store, reopen = backend
    await store.add_usage(usage("a", "m1", 10, 5, 0.5, T0 + 10))
    await store.add_usage(usage("a", "m2", 1, 1, 0.1, T0 + DAY + 10))
    await store.add_usage(usage("b", "m1", 100, 50, 5.0, T0 + 20))
    before = await store.global_usage_totals(0)

    await store.move_usage("a", "b")
    store = await reopen()
    moved = await store.usage_totals("b", 0)
    assert (moved.prompt_tokens, moved.completion_tokens) == (111, 56)
    assert moved.by_model["m1"][:2] == (110, 55) and moved.by_model["m2"][:2] == (1, 1)
    assert abs(moved.cost - 5.6) < 1e-9
    assert (await store.usage_totals("a", 0)).tokens == 0
    assert (await store.usage_totals("b", T0 + DAY)).tokens == 2
    after = await store.global_usage_totals(0)
    assert (after.prompt_tokens, after.completion_tokens) == (before.prompt_tokens, before.completion_tokens)
    await store.move_usage("nobody", "b")
    assert (await store.usage_totals("b", 0)).tokens == 167


async def test_restore_brings_back_exactly_the_backed_up_state(
    backend: tuple[Store, Reopen], tmp_path: Path
) -> None:
    store, reopen = backend
    user = UserRecord(id="u1", identities=("telegram:1",), display_name="Ani", status="approved", created_at=T0)
    await store.put_user(user)
    await store.put_conversation(conv("c1", "user:u1"))
    await store.append_messages([msg("c1", 0), msg("c1", 1, "assistant")])
    await store.add_usage(usage("u1", "m", 3, 4, 0.01, T0 + 5))
    await store.set_meta("budget", {"month": 5})

    await store.backup(tmp_path / "backup")

    # Everything after the backup is undone by the restore, deletions included.
    await store.append_messages([msg("c1", 2)])
    await store.put_user(UserRecord(id="u2", identities=("signal:x",), created_at=T0 + 1))
    await store.delete_user("u1")
    await store.set_meta("budget", None)
    await store.set_meta("later", 1)

    await store.restore(tmp_path / "backup")
    store = await reopen()
    assert await store.get_user("u1") == user
    assert await store.find_user("telegram:1") == user
    assert await store.find_user("signal:x") is None
    assert await store.get_user("u2") is None
    assert [c.id for c in await store.list_conversations("user:u1")] == ["c1"]
    assert [m.content for m in await store.get_messages("c1")] == ["text 0", "text 1"]
    assert (await store.usage_totals("u1", 0)).tokens == 7
    assert (await store.global_usage_totals(0)).tokens == 7
    assert await store.get_meta("budget") == {"month": 5}
    assert await store.get_meta("later") is None
    # The restored store keeps working.
    await store.append_messages([msg("c1", 2)])
    assert len(await store.get_messages("c1")) == 3


async def test_tinydb_update_meta_is_atomic_across_store_instances(tmp_path: Path) -> None:
    # Two instances on one folder stand for the Telegram and the Signal process.
    first, second = TinyDBStore(tmp_path / "data"), TinyDBStore(tmp_path / "data")
    await first.open()
    await second.open()
    try:
        await asyncio.gather(
            *(s.update_meta("n", lambda old: (old or 0) + 1) for _ in range(20) for s in (first, second))
        )
        assert await first.get_meta("n") == 40
    finally:
        await first.close()
        await second.close()


async def test_tinydb_backup_refuses_a_folder_that_is_not_empty_and_restore_a_non_backup(
    tmp_path: Path,
) -> None:
    store = TinyDBStore(tmp_path / "data")
    await store.open()
    try:
        (tmp_path / "full").mkdir()
        (tmp_path / "full" / "x").write_text("keep me")
        with pytest.raises(StoreError, match="not empty"):
            await store.backup(tmp_path / "full")
        with pytest.raises(StoreError, match="not a Ferry backup"):
            await store.restore(tmp_path / "full")
        assert (tmp_path / "full" / "x").read_text() == "keep me"
        await store.backup(tmp_path / "empty-ok")
        assert (tmp_path / "empty-ok" / "schema.json").is_file()
        assert not (tmp_path / "empty-ok" / "locks").exists()
    finally:
        await store.close()
