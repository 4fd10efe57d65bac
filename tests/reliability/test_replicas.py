"""Telegram replicas (issue 16): real ``ferry telegram`` processes on one PostgreSQL store, one entry.

Every replica is the installed ``ferry telegram`` in webhook mode; the fake Bot API posts each
update to a round-robin entry as Telegram posts to a reverse proxy (up to ``max_connections`` at
once, one chat's updates one at a time, a failed one again). Whatever replica takes an update,
each is answered once, a chat's answers come in its messages' order, ``/cancel`` stops the answer
another replica is writing, an alert left for Telegram is delivered once, and a replica killed
with SIGKILL under load loses nothing and repeats nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from core import outbox
from core.store.postgres import PostgresStore
from core.types import AdminAlert
from tests.reliability.harness import wait_until
from tests.reliability.model import answer_for
from tests.reliability.replicas import SECRET, ReplicaLoad, Replicas
from tests.store.pg import pg_schema, schema_url


@pytest.fixture
def database_url() -> Iterator[str]:
    with pg_schema() as schema:
        yield schema_url(schema)


async def test_each_update_is_answered_once_and_in_order_whichever_replica_takes_it(
    tmp_path: Path, database_url: str
) -> None:
    load = ReplicaLoad(replicas=3, chats=8, messages=4, model_delay=0.02)
    async with Replicas(load, tmp_path, database_url) as run:
        tally = await run.run()
        seen = tally.seen
        assert (seen.sent, seen.answered, seen.lost, seen.duplicated, tally.order_violations) == (32, 32, 0, 0, 0)
        assert len(tally.taken_by) == 3, "the entry spread the updates over every replica"
        # Telegram sends an update again when its 200 got lost: another replica recognises it.
        async with aiohttp.ClientSession() as http:
            for uid in run.update_ids[7000] * 2:
                update = {"update_id": uid, "message": run.tg._message(7000, run.tg.user(7000), text="again")}
                headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
                async with http.post(f"{run.entry.url}/tg-hook", data=json.dumps(update), headers=headers) as r:
                    assert r.status == 200
        await asyncio.sleep(2.0)
        assert run.tg.log(7000).texts == [answer_for(f"c0m{j}") for j in range(4)], "nothing answered twice"


async def test_a_replica_killed_under_load_loses_nothing_and_repeats_nothing(tmp_path: Path, database_url: str) -> None:
    load = ReplicaLoad(replicas=2, chats=10, messages=4, kill_after=0.3, model_delay=0.05)
    async with Replicas(load, tmp_path, database_url) as run:
        tally = await run.run()
    assert tally.killed
    seen = tally.seen
    assert (seen.sent, seen.answered, seen.lost, seen.duplicated, tally.order_violations) == (40, 40, 0, 0, 0), (
        tally.line()
    )


async def test_cancel_reaches_the_replica_writing_the_answer(tmp_path: Path, database_url: str) -> None:
    load = ReplicaLoad(replicas=2, chats=1, messages=1, model_delay=1.5)
    async with Replicas(load, tmp_path, database_url) as run:
        tg = run.tg
        tg.push_text(7000, "question c0m0: a long one please")
        assert await wait_until(lambda: run.model.streaming > 0, 30)
        tg.push_text(7000, "/cancel")
        assert await wait_until(lambda: len(run.entry.forwarded) >= 2 and run.model.streaming == 0, 30)
        writer, canceller = run.entry.forwarded[:2]
        assert writer != canceller, "the /cancel went to the other replica"
        assert await wait_until(lambda: any("cut off" in t or "Stopped" in t for t in tg.log(7000).texts), 30)
        await asyncio.sleep(1.0)
        assert answer_for("c0m0") not in tg.log(7000).texts, "the answer was stopped, not written out"
        assert run.model.requests == 1


async def test_an_alert_for_telegram_admins_is_delivered_once_by_one_replica(
    tmp_path: Path, database_url: str
) -> None:
    async with Replicas(ReplicaLoad(replicas=3, chats=0, messages=0), tmp_path, database_url) as run:
        store = PostgresStore(database_url)
        await store.open()
        try:
            for n in range(3):  # as the Signal process leaves them (core/outbox.py)
                await outbox.post(store, "telegram", AdminAlert(to=("telegram:4242",), text=f"alert {n}"), time.time())
        finally:
            await store.close()
        assert await wait_until(lambda: len(run.tg.log(4242).texts) >= 3, 30)
        await asyncio.sleep(5.0)  # every replica's relay has looked at the outbox again meanwhile
        assert sorted(run.tg.log(4242).texts) == ["alert 0", "alert 1", "alert 2"]
