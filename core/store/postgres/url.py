"""``FERRY_DATABASE_URL``: a libpq URL, plus an optional ``schema`` parameter that is Ferry's own."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from core.store.base import StoreError

SCHEMES = ("postgresql", "postgres")
SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def is_postgres_url(value: str) -> bool:
    """Whether a setting or a command-line argument names a PostgreSQL database."""
    return urlsplit(value).scheme in SCHEMES


@dataclass(frozen=True)
class StoreURL:
    """A parsed database URL: what libpq gets, which schema Ferry uses, and a printable form."""

    conninfo: str
    schema: str | None
    display: str
    connect_kwargs: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, url: str, *, schema: str | None = None) -> StoreURL:
        """Split ``?schema=name`` off the URL (libpq would refuse it) and turn it into a search_path."""
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise StoreError(f"FERRY_DATABASE_URL must start with postgresql:// (got {parts.scheme or 'no'} scheme)")
        query = parse_qsl(parts.query, keep_blank_values=True)
        options = ""
        rest: list[tuple[str, str]] = []
        for name, value in query:
            if name == "schema":
                schema = schema or value
            elif name == "options":
                options = value
            else:
                rest.append((name, value))
        if schema is not None and not SCHEMA_NAME.match(schema):
            raise StoreError(f"the schema name {schema!r} must be lower-case letters, digits and _")
        kwargs: dict[str, str] = {}
        if schema:
            options = f"{options} -csearch_path={schema}".strip()
        if options:
            kwargs["options"] = options
        conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment))
        netloc = parts.netloc
        if parts.password is not None:
            netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
        display = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        if schema:
            display += f"?schema={schema}"
        return cls(conninfo=conninfo, schema=schema, display=display, connect_kwargs=kwargs)
