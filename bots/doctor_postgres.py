"""``ferry doctor`` for ``FERRY_DATABASE_URL``: the URL, the server, the schema version, the permissions."""

from __future__ import annotations

import psycopg

from bots.doctor import Finding, round_trip
from core.store.base import StoreError
from core.store.postgres import PostgresStore, StoreURL
from core.store.postgres.schema import MIGRATIONS, TABLES, applied_migrations, check

CONNECT_SECONDS = 5
URL_FIX = "set FERRY_DATABASE_URL=postgresql://USER:PASSWORD@HOST:5432/DATABASE (optionally ?schema=NAME)"


async def check_postgres(url: str) -> list[Finding]:
    """Each finding with a fix; stops at the first that makes the next meaningless."""
    try:
        parsed = StoreURL.parse(url)
    except StoreError as e:
        return [Finding("store", False, str(e), URL_FIX)]
    where = parsed.display
    try:
        conn = await psycopg.AsyncConnection.connect(
            parsed.conninfo, autocommit=True, connect_timeout=CONNECT_SECONDS,
            options=parsed.connect_kwargs.get("options", ""),
        )
    except psycopg.Error as e:
        return [
            Finding(
                "store", False, f"cannot connect to {where}: {str(e).strip()}",
                "start PostgreSQL (compose: docker compose --profile postgres up -d postgres) and check the host, "
                "port, user and password in FERRY_DATABASE_URL",
            )
        ]
    findings = [Finding("store", True, f"connected to {where}")]
    async with conn:
        schema = parsed.schema or "public"
        cur = await conn.execute("SELECT to_regnamespace(%s) IS NOT NULL", (schema,))
        row = await cur.fetchone()
        exists = bool(row and row[0])
        has_tables = False
        if exists:
            cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.schema_migrations",))
            row = await cur.fetchone()
            has_tables = bool(row and row[0])
        problem = await _missing_privileges(conn, schema, exists, has_tables)
        if problem:
            cur = await conn.execute("SELECT current_user")
            row = await cur.fetchone()
            user = row[0] if row else "USER"
            return [
                *findings,
                Finding(
                    "store", False, f"{user} may not {problem}",
                    f"as the database owner: GRANT USAGE, CREATE ON SCHEMA {schema} TO {user}; "
                    f"GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA {schema} TO {user} "
                    "(or connect as the owner)",
                ),
            ]
        findings.append(Finding("store", True, "permissions to create, read and write Ferry's tables"))
        applied = await applied_migrations(conn) if has_tables else None
        if applied is None:
            findings.append(Finding("store", True, "no Ferry tables yet: the first bot to start creates them"))
        else:
            try:
                check(applied, MIGRATIONS)
            except StoreError as e:
                return [*findings, Finding("store", False, str(e), "upgrade Ferry to the version that wrote it")]
            version = max((v for _, v in applied), default=0)
            newest = max(m.version for m in MIGRATIONS)
            note = "" if version == newest else f"; the next start migrates it to {newest}"
            findings.append(Finding("store", True, f"schema version {version}{note}"))
    return [*findings, *await _round_trip(url, where)]


async def _missing_privileges(conn: psycopg.AsyncConnection, schema: str, exists: bool, has_tables: bool) -> str:
    if not exists:
        cur = await conn.execute("SELECT has_database_privilege(current_database(), 'CREATE')")
        row = await cur.fetchone()
        return "" if row and row[0] else f"create the schema {schema}"
    cur = await conn.execute("SELECT has_schema_privilege(%s, 'USAGE'), has_schema_privilege(%s, 'CREATE')",
                             (schema, schema))
    row = await cur.fetchone()
    if not row or not row[0]:
        return f"use the schema {schema}"
    if not has_tables:
        return "" if row[1] else f"create tables in the schema {schema}"
    for table in (*TABLES, "schema_migrations"):
        # A table a pending migration adds (the intake on a schema from before it) is not there yet.
        cur = await conn.execute(
            "SELECT to_regclass(%s) IS NULL OR has_table_privilege(%s, 'SELECT, INSERT, UPDATE, DELETE')",
            (f"{schema}.{table}", f"{schema}.{table}"),
        )
        ok = await cur.fetchone()
        if not ok or not ok[0]:
            return f"read and write the table {schema}.{table}"
    return ""


async def _round_trip(url: str, where: str) -> list[Finding]:
    try:
        return await round_trip(PostgresStore(url, timeout=CONNECT_SECONDS), where)
    except StoreError as e:
        return [Finding("store", False, str(e), "see the findings above")]
