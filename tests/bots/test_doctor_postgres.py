"""``ferry doctor`` with FERRY_DATABASE_URL: the URL, the server, the schema version, the permissions."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from bots.doctor import Finding, report
from bots.doctor_postgres import check_postgres
from core.store.postgres import PostgresStore
from core.store.postgres.schema import MIGRATIONS
from tests.store.pg import PG_URL, pg_schema, schema_url


@pytest.fixture
def schema() -> Iterator[str]:
    with pg_schema() as name:
        yield name


def text(findings: list[Finding]) -> str:
    out = io.StringIO()
    report(findings, out)
    return out.getvalue()


async def test_a_fresh_then_a_migrated_schema_passes(schema: str) -> None:
    findings = await check_postgres(schema_url(schema))
    assert all(f.ok for f in findings), text(findings)
    assert "no Ferry tables yet" in text(findings)
    findings = await check_postgres(schema_url(schema))
    assert all(f.ok for f in findings) and "schema version 2" in text(findings)


async def test_a_schema_from_before_the_intake_passes_and_says_it_will_migrate(schema: str) -> None:
    old = PostgresStore(schema_url(schema), migrations=MIGRATIONS[:1])
    await old.open()
    await old.close()
    findings = await check_postgres(schema_url(schema))
    assert all(f.ok for f in findings), text(findings)
    assert "schema version 1; the next start migrates it to 2" in text(findings)


async def test_an_unreachable_server_and_a_bad_url_each_say_what_to_fix() -> None:
    down = await check_postgres("postgresql://ferry:pw@127.0.0.1:1/ferry")
    assert not down[-1].ok and "cannot connect to postgresql://ferry:***@127.0.0.1:1/ferry" in down[-1].detail
    assert "docker compose --profile postgres" in down[-1].fix
    bad = await check_postgres("postgresql://db/ferry?schema=Bad-Name")
    assert not bad[-1].ok and "FERRY_DATABASE_URL=postgresql://" in bad[-1].fix


async def test_a_newer_schema_says_upgrade(schema: str) -> None:
    store = PostgresStore(schema_url(schema))
    await store.open()
    await store.close()
    with psycopg.connect(PG_URL, options=f"-csearch_path={schema}", autocommit=True) as c:
        c.execute("INSERT INTO schema_migrations (name, version) VALUES ('0002_future', 2)")
    findings = await check_postgres(schema_url(schema))
    assert not findings[-1].ok and "newer Ferry" in findings[-1].detail and "upgrade Ferry" in findings[-1].fix


async def test_a_user_without_rights_gets_the_grant_to_run(schema: str) -> None:
    store = PostgresStore(schema_url(schema))
    await store.open()
    await store.close()
    role = f"r_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as c:
        c.execute(f"CREATE ROLE {role} LOGIN")
        c.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
    try:
        url = schema_url(schema).replace("postgres@", f"{role}@")
        findings = await check_postgres(url)
        assert not findings[-1].ok, text(findings)
        assert f"{role} may not read and write the table {schema}.users" in findings[-1].detail
        assert f"GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA {schema} TO {role}" in (
            findings[-1].fix
        )
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as c:
            c.execute(f"REVOKE ALL ON SCHEMA {schema} FROM {role}")
            c.execute(f"DROP ROLE {role}")
