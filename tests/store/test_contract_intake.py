"""The intake part of the store contract (issue 11), run against every backend.

A message is recorded once per key with its place in its chat's line; what is not delivered yet
survives a reopen, in order; a status only moves forward; delivered records are forgotten in time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from core.store.base import INTAKE_KEEP, INTAKE_RETENTION, IntakeRecord, Store
from tests.store import test_contract as contract

# The same backends as the main contract suite.
backend = contract.backend
store = contract.store
Reopen = contract.Reopen
T0 = contract.T0

ANSWER: list[dict[str, Any]] = [{"type": "final", "text": "hi", "buttons": [], "interrupted": False, "streamed": True}]


def rec(key: str, chat: str = "telegram:1", at: float = T0, **kw: Any) -> IntakeRecord:
    return IntakeRecord(key=key, chat=chat, message={"text": key}, received_at=at, **kw)


async def test_a_key_is_recorded_once_with_its_place_in_the_chat_line(store: Store) -> None:
    first = await store.record(rec("telegram:10"))
    second = await store.record(rec("telegram:11"))
    other = await store.record(rec("telegram:12", chat="telegram:2"))
    assert first is not None and second is not None and other is not None
    assert (first.seq, second.seq, other.seq) == (0, 1, 0)
    assert await store.record(rec("telegram:10", at=T0 + 5)) is None, "a key seen before changes nothing"
    unfinished = await store.unfinished("telegram")
    assert [(r.key, r.seq, r.message) for r in unfinished if r.chat == "telegram:1"] == [
        ("telegram:10", 0, {"text": "telegram:10"}),
        ("telegram:11", 1, {"text": "telegram:11"}),
    ]


async def test_unfinished_survives_a_reopen_in_line_order_per_platform(backend: tuple[Store, Reopen]) -> None:
    store, reopen = backend
    for n in range(5):
        await store.record(rec(f"telegram:{n}", chat=f"telegram:{n % 2}", at=T0 + n, route={"n": n}))
    await store.record(rec("signal:+1:1", chat="signal:+1", at=T0))
    await store.mark_delivered("telegram:0", "telegram:2", "m2")
    store = await reopen()
    got = await store.unfinished("telegram")
    assert [r.key for r in got] == ["telegram:0", "telegram:4", "telegram:1", "telegram:3"]
    assert [r.route for r in got] == [{"n": 0}, {"n": 4}, {"n": 1}, {"n": 3}]
    assert all(r.status == "received" for r in got)
    assert [r.key for r in await store.unfinished("signal")] == ["signal:+1:1"]
    assert await store.unfinished("whatsapp") == []


async def test_marks_move_forward_only_and_are_durable(backend: tuple[Store, Reopen]) -> None:
    store, reopen = backend
    now = time.time()  # recent: a backend may forget delivered records older than a day at any time
    await store.record(rec("signal:+1:7", chat="signal:+1", at=now))
    await store.mark_shown("signal:+1", "signal:+1:7", "1700")
    await store.mark_answered("signal:+1", "signal:+1:7", ANSWER)
    store = await reopen()
    (answered,) = await store.unfinished("signal")
    assert (answered.status, answered.answer, answered.ref) == ("answered", ANSWER, "1700")
    await store.mark_delivered("signal:+1", "signal:+1:7", None)
    await store.mark_answered("signal:+1", "signal:+1:7", ANSWER)  # late: undoes nothing
    await store.mark_shown("signal:+1", "signal:+1:7", "1800")
    store = await reopen()
    assert await store.unfinished("signal") == []
    assert await store.record(rec("signal:+1:7", chat="signal:+1", at=now)) is None, "still known after delivery"


async def test_the_answer_and_the_message_about_to_show_it_are_one_durable_mark(
    backend: tuple[Store, Reopen],
) -> None:
    """``Receipt.shown("sending…")`` writes the answer and the ref together: one write on the way to
    every final text, not two; an empty ref keeps the one recorded before."""
    store, reopen = backend
    now = time.time()
    await store.record(rec("telegram:3", chat="telegram:1", at=now))
    await store.mark_shown("telegram:1", "telegram:3", "stub:5")
    await store.mark_answered("telegram:1", "telegram:3", ANSWER, "sending:0:0:7")
    await store.record(rec("telegram:4", chat="telegram:1", at=now))
    await store.mark_shown("telegram:1", "telegram:4", "stub:8")
    await store.mark_answered("telegram:1", "telegram:4", ANSWER, "")
    store = await reopen()
    first, second = await store.unfinished("telegram")
    assert (first.status, first.answer, first.ref) == ("answered", ANSWER, "sending:0:0:7")
    assert (second.status, second.answer, second.ref) == ("answered", ANSWER, "stub:8")


async def test_marks_of_an_unknown_key_change_nothing(store: Store) -> None:
    await store.mark_answered("telegram:1", "telegram:404", ANSWER)
    await store.mark_delivered("telegram:1", "telegram:404", "1")
    assert await store.unfinished("telegram") == []


async def test_delivered_records_are_forgotten_after_a_day_but_unfinished_ones_never(store: Store) -> None:
    await store.record(rec("telegram:1", at=T0))
    await store.record(rec("telegram:2", at=T0))
    await store.mark_delivered("telegram:1", "telegram:1", "1")
    later = T0 + INTAKE_RETENTION + 1
    await store.record(rec("telegram:3", at=later))
    assert await store.record(rec("telegram:1", at=later)) is not None, "forgotten: a day has passed"
    assert [r.key for r in await store.unfinished("telegram")] == ["telegram:2", "telegram:3", "telegram:1"]


async def test_a_chat_keeps_a_bounded_number_of_delivered_records(store: Store) -> None:
    for n in range(INTAKE_KEEP + 2):
        await store.record(rec(f"telegram:{n}", at=T0 + n))
        await store.mark_delivered("telegram:1", f"telegram:{n}", str(n))
    await store.record(rec("telegram:last", at=T0 + 1000))
    assert await store.record(rec("telegram:0", at=T0 + 1001)) is not None, "the oldest delivered went"
    assert await store.record(rec(f"telegram:{INTAKE_KEEP + 1}", at=T0 + 1002)) is None, "the newest stay"


async def test_concurrent_records_of_one_chat_get_distinct_places(store: Store) -> None:
    got = await asyncio.gather(*(store.record(rec(f"telegram:{n}", at=T0 + n)) for n in range(20)))
    assert sorted(r.seq for r in got if r is not None) == list(range(20))
    assert [r.seq for r in await store.unfinished("telegram")] == list(range(20))
