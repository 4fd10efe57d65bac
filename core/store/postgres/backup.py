"""Backup and restore of the PostgreSQL store as one JSON-lines file per table.

A backup reads every table in one REPEATABLE READ transaction, so it is a single consistent moment
of the store while the bots keep writing. It is meant for Ferry's own ``backup``/``restore`` and the
backup tests; operators of a large installation also have ``pg_dump``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import IO, Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from core.store.base import StoreError
from core.store.postgres.schema import TABLES, Migration, applied_migrations, check

MANIFEST = "ferry-postgres-backup.json"
JSON_COLUMNS = {("users", "extra"), ("meta", "value"), ("intake", "message"), ("intake", "route"), ("intake", "answer")}


async def _columns(conn: AsyncConnection, table: str) -> list[str]:
    cur = await conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = %s ORDER BY ordinal_position",
        (table,),
    )
    return [str(r[0]) for r in await cur.fetchall()]


def _prepare(dest: Path) -> Path:
    if dest.exists() and any(dest.iterdir()):
        raise StoreError(f"the backup folder {dest} is not empty")
    tmp = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def _finish(tmp: Path, dest: Path, manifest: dict[str, Any]) -> None:
    (tmp / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    if dest.exists():
        dest.rmdir()
    os.replace(tmp, dest)


def _open(path: Path, mode: str) -> IO[str]:
    return open(path, mode, encoding="utf-8")


async def dump(conn: AsyncConnection, dest: Path) -> None:
    """Write every table to the new folder ``dest`` (via a temporary sibling renamed when whole)."""
    tmp = await asyncio.to_thread(_prepare, dest)
    counts: dict[str, int] = {}
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        applied = await applied_migrations(conn) or []
        for table in TABLES:
            cols = await _columns(conn, table)
            n = 0
            with _open(tmp / f"{table}.jsonl", "w") as out:
                async with conn.cursor(name=f"ferry_backup_{table}") as cur:
                    await cur.execute(f"SELECT {', '.join(cols)} FROM {table}")
                    async for row in cur:
                        out.write(json.dumps(dict(zip(cols, row, strict=True)), ensure_ascii=False) + "\n")
                        n += 1
                out.flush()
                os.fsync(out.fileno())
            counts[table] = n
    manifest = {"migrations": [{"name": n, "version": v} for n, v in applied], "rows": counts}
    await asyncio.to_thread(_finish, tmp, dest, manifest)


def _manifest(src: Path) -> dict[str, Any]:
    if not (src / MANIFEST).is_file():
        raise StoreError(f"{src} is not a Ferry PostgreSQL backup (it has no {MANIFEST})")
    manifest: dict[str, Any] = json.loads((src / MANIFEST).read_text(encoding="utf-8"))
    return manifest


def _value(table: str, column: str, value: Any) -> Any:
    return Jsonb(value) if (table, column) in JSON_COLUMNS and value is not None else value


async def load(conn: AsyncConnection, src: Path, migrations: tuple[Migration, ...]) -> None:
    """Empty every table and fill it from a backup folder (the caller's transaction makes it atomic)."""
    manifest = await asyncio.to_thread(_manifest, src)
    check([(m["name"], int(m["version"])) for m in manifest["migrations"]], migrations)
    await conn.execute(f"LOCK TABLE {', '.join(TABLES)} IN ACCESS EXCLUSIVE MODE")
    await conn.execute(f"TRUNCATE {', '.join(TABLES)}")
    for table in TABLES:
        if not (src / f"{table}.jsonl").is_file():
            continue  # a backup written before the table existed (the intake, migration 0002)
        with _open(src / f"{table}.jsonl", "r") as lines:
            head = lines.readline()
            if not head:
                continue
            cols = list(json.loads(head))
            async with conn.cursor() as cur, cur.copy(
                f"COPY {table} ({', '.join(cols)}) FROM STDIN"
            ) as copy:
                for line in (head, *lines):
                    row = json.loads(line)
                    await copy.write_row([_value(table, c, row[c]) for c in cols])
