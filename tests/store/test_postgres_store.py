"""What the PostgreSQL store adds to the contract: migrations under a lock, transactions, reconnects."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from core.app import build_store
from core.settings import SettingsError
from core.store.base import IntakeRecord, MessageRecord, StoreError, UsageRecord, UserRecord
from core.store.postgres import PostgresStore, StoreURL
from core.store.postgres.schema import MIGRATIONS
from tests.conftest import make_settings
from tests.store.pg import PG_URL, pg_schema, schema_url
from tests.store.test_contract import T0, conv, msg


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    with pg_schema() as name:
        yield name


@pytest.fixture
async def store(schema: str) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(schema_url(schema))
    await s.open()
    yield s
    await s.close()


def rows(schema: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(PG_URL, options=f"-csearch_path={schema}") as conn:
        return conn.execute(query).fetchall()


async def test_processes_starting_at_once_apply_each_migration_once(schema: str) -> None:
    stores = [PostgresStore(schema_url(schema)) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        assert rows(schema, "SELECT name, version FROM schema_migrations") == [
            ("0001_initial", 1),
            ("0002_intake", 2),
        ]
        assert (await stores[0].schema()) == {"schema_version": 2, "migrations": ["0001_initial", "0002_intake"]}
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_a_schema_written_before_the_intake_gains_it_and_keeps_its_data(schema: str) -> None:
    old = PostgresStore(schema_url(schema), migrations=MIGRATIONS[:1])
    await old.open()
    await old.put_user(UserRecord(id="u1", identities=("telegram:1",)))
    await old.close()
    store = PostgresStore(schema_url(schema))
    await store.open()
    try:
        assert (await store.schema())["migrations"] == ["0001_initial", "0002_intake"]
        assert (await store.find_user("telegram:1")) is not None
        recorded = await store.record(IntakeRecord("telegram:5", "telegram:1", {"text": "hi"}, T0))
        assert recorded is not None and recorded.seq == 0
        assert [r.key for r in await store.unfinished("telegram")] == ["telegram:5"]
    finally:
        await store.close()


async def test_a_schema_from_a_newer_ferry_is_refused(store: PostgresStore, schema: str) -> None:
    await store.close()
    with psycopg.connect(PG_URL, options=f"-csearch_path={schema}", autocommit=True) as c:
        c.execute("INSERT INTO schema_migrations (name, version) VALUES ('0002_from_the_future', 2)")
    with pytest.raises(StoreError, match="newer Ferry"):
        await PostgresStore(schema_url(schema)).open()


async def test_an_answer_and_its_usage_land_together_or_not_at_all(store: PostgresStore, schema: str) -> None:
    await store.put_conversation(conv("c1", "user:u1"))
    # A check PostgreSQL runs only at COMMIT: a write of meta "boom" makes the commit itself fail.
    with psycopg.connect(PG_URL, options=f"-csearch_path={schema}", autocommit=True) as c:
        c.execute(
            "CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN IF NEW.key = 'boom' THEN RAISE EXCEPTION 'commit refused'; END IF; RETURN NEW; END $$"
        )
        c.execute(
            "CREATE CONSTRAINT TRIGGER boom AFTER INSERT ON meta DEFERRABLE INITIALLY DEFERRED "
            "FOR EACH ROW EXECUTE FUNCTION refuse_boom()"
        )

    def answer(n: int) -> MessageRecord:
        return MessageRecord(f"a{n}", "c1", "assistant", f"answer {n}", T0 + n, model="m", prompt_tokens=3)

    # As the assistant stores a finished answer: both calls at once (here with a third that sinks the commit).
    results = await asyncio.gather(
        store.append_messages([answer(1)]),
        store.add_usage(UsageRecord("u1", "c1", "m", 3, 0, 0.01, T0 + 1)),
        store.set_meta("boom", 1),
        return_exceptions=True,
    )
    assert all(isinstance(r, Exception) for r in results)
    assert await store.get_messages("c1") == []
    assert (await store.usage_totals("u1", T0)).tokens == 0

    await asyncio.gather(
        store.append_messages([answer(2)]), store.add_usage(UsageRecord("u1", "c1", "m", 3, 0, 0.01, T0 + 2))
    )
    assert [m.content for m in await store.get_messages("c1")] == ["answer 2"]
    assert (await store.usage_totals("u1", T0)).tokens == 3


async def test_a_refused_write_fails_alone_in_its_batch(store: PostgresStore) -> None:
    await store.put_conversation(conv("c1", "user:u1"))
    bad = msg("c1", 1)
    bad = MessageRecord(bad.id, bad.conversation_id, bad.role, "nul \x00 byte", bad.created_at)
    results = await asyncio.gather(
        store.append_messages([msg("c1", 0)]), store.append_messages([bad]), store.set_meta("k", 1),
        return_exceptions=True,
    )
    assert isinstance(results[1], Exception)
    assert [m.content for m in await store.get_messages("c1")] == ["text 0"]
    assert await store.get_meta("k") == 1


async def test_update_meta_is_atomic_across_store_instances(schema: str) -> None:
    first, second = PostgresStore(schema_url(schema)), PostgresStore(schema_url(schema))
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


async def test_the_pool_replaces_connections_the_server_dropped(store: PostgresStore, schema: str) -> None:
    await store.set_meta("k", "before")
    # What a server restart does to every open connection.
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = '' AND pid <> pg_backend_pid() AND query NOT LIKE '%%pg_stat_activity%%' "
            "AND datname = 'test' AND backend_type = 'client backend' AND state = 'idle'"
        )
    assert await store.get_meta("k") == "before"
    await store.set_meta("k", "after")
    assert await store.get_meta("k") == "after"


async def test_an_unreachable_server_is_a_store_error_without_the_password() -> None:
    store = PostgresStore("postgresql://ferry:s3cret@127.0.0.1:1/ferry", timeout=1.0)
    with pytest.raises(StoreError) as err:
        await store.open()
    assert "s3cret" not in str(err.value) and "127.0.0.1:1" in str(err.value)


def test_the_url_keeps_the_schema_for_ferry_and_the_rest_for_libpq() -> None:
    url = StoreURL.parse("postgresql://ferry:pw@db:5432/ferry?sslmode=require&schema=bot")
    assert url.schema == "bot"
    assert url.connect_kwargs == {"options": "-csearch_path=bot"}
    assert "schema" not in url.conninfo and "sslmode=require" in url.conninfo
    assert url.display == "postgresql://ferry:***@db:5432/ferry?schema=bot"
    with pytest.raises(StoreError):
        StoreURL.parse("postgresql://db/ferry?schema=Robert');DROP")


async def test_backup_refuses_a_folder_that_is_not_empty_and_restore_a_non_backup(
    store: PostgresStore, tmp_path: Path
) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(StoreError, match="not empty"):
        await store.backup(tmp_path / "full")
    with pytest.raises(StoreError, match="not a Ferry PostgreSQL backup"):
        await store.restore(tmp_path / "full")
    assert (tmp_path / "full" / "x").read_text() == "keep me"


def test_the_setting_selects_postgres_and_refuses_another_url() -> None:
    store = build_store(make_settings(FERRY_DATABASE_URL="postgresql://ferry@db:5432/ferry?schema=bot"))
    assert isinstance(store, PostgresStore) and store.url.schema == "bot"
    with pytest.raises(SettingsError, match="postgresql://"):
        build_store(make_settings(FERRY_DATABASE_URL="mysql://db/ferry"))


async def test_a_backup_keeps_the_unfinished_intake_and_an_older_backup_restores(
    store: PostgresStore, tmp_path: Path
) -> None:
    now = time.time()  # recent: a delivered record older than a day may be forgotten at any time
    answer = [{"type": "final", "text": "a", "buttons": [], "interrupted": False, "streamed": True}]
    for key in ("telegram:1", "telegram:2", "telegram:3"):
        await store.record(IntakeRecord(key, "telegram:9", {"text": key}, now, route={"thread": 4}))
    await store.mark_answered("telegram:9", "telegram:2", answer)
    await store.mark_shown("telegram:9", "telegram:2", "77")
    await store.mark_delivered("telegram:9", "telegram:3", "78")
    before = await store.unfinished("telegram")
    await store.backup(tmp_path / "b")
    await store.record(IntakeRecord("telegram:4", "telegram:9", {"text": "after"}, now))
    await store.restore(tmp_path / "b")
    assert await store.unfinished("telegram") == before
    assert [(r.key, r.status, r.answer, r.ref) for r in before] == [
        ("telegram:1", "received", None, None),
        ("telegram:2", "answered", answer, "77"),
    ]
    assert await store.record(IntakeRecord("telegram:3", "telegram:9", {}, now)) is None, "delivered key kept"
    # A backup written before the intake existed has no intake file: it restores, with an empty intake.
    (tmp_path / "b" / "intake.jsonl").unlink()
    await store.restore(tmp_path / "b")
    assert await store.unfinished("telegram") == []
