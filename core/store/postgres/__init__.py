"""The PostgreSQL backend of the store (``FERRY_DATABASE_URL=postgresql://…``)."""

from core.store.postgres.store import PostgresStore
from core.store.postgres.url import StoreURL, is_postgres_url

__all__ = ["PostgresStore", "StoreURL", "is_postgres_url"]
