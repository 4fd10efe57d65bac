"""The real PostgreSQL server the store tests use, one fresh schema per test.

``.ci/run`` makes sure a server answers on 127.0.0.1:5432 (trust auth, database ``test``);
``FERRY_TEST_DATABASE_URL`` points the tests at another one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

PG_URL = os.environ.get("FERRY_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def new_schema_name() -> str:
    """A schema name no other test uses."""
    return f"t_{uuid.uuid4().hex[:16]}"


def drop_schema(name: str) -> None:
    """Drop a test's schema and everything in it."""
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        # A test that failed may leave a connection holding a lock: fail loudly rather than hang.
        conn.execute("SET lock_timeout = '20s'")
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@contextmanager
def pg_schema() -> Iterator[str]:
    """A unique schema name, dropped afterwards (the store creates it on open)."""
    name = new_schema_name()
    try:
        yield name
    finally:
        drop_schema(name)


def schema_url(schema: str) -> str:
    """The test database's URL with Ferry's ``schema`` parameter."""
    return f"{PG_URL}?schema={schema}"
