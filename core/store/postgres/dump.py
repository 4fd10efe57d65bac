"""What ``ferry store copy`` reads from and writes to PostgreSQL beyond the store contract."""

from __future__ import annotations

from typing import Any

from core.store.postgres.store import PostgresStore
from core.store.store_copy import UsageDay


class PostgresDump:
    """Lists a PostgreSQL store's conversations, usage days and meta, and sets usage days exactly."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def conversation_ids(self) -> list[str]:
        """Every conversation id, in a stable order."""
        async with self._store.connection() as conn:
            cur = await conn.execute("SELECT id FROM conversations ORDER BY id")
            return [str(r[0]) for r in await cur.fetchall()]

    async def usage_days(self, user_id: str) -> list[UsageDay]:
        """The user's per-day, per-model sums."""
        async with self._store.connection() as conn:
            cur = await conn.execute(
                "SELECT user_id, day, model, prompt_tokens, completion_tokens, cost FROM usage_days "
                "WHERE user_id = %s ORDER BY day, model",
                (user_id,),
            )
            rows = await cur.fetchall()
        return [UsageDay(str(u), int(d), str(m), int(p), int(c), float(x)) for u, d, m, p, c, x in rows]

    async def meta_items(self) -> dict[str, Any]:
        """Every meta key and value."""
        async with self._store.connection() as conn:
            cur = await conn.execute("SELECT key, value FROM meta ORDER BY key")
            return {str(k): v for k, v in await cur.fetchall()}

    async def set_usage_days(self, rows: list[UsageDay]) -> None:
        """Make the stored sums exactly these (a re-run writes the same values, never adds twice)."""
        if not rows:
            return
        async with self._store.connection() as conn, conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO usage_days VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (user_id, day, model) "
                "DO UPDATE SET prompt_tokens = excluded.prompt_tokens, "
                "completion_tokens = excluded.completion_tokens, cost = excluded.cost",
                [(r.user_id, r.day, r.model, r.prompt_tokens, r.completion_tokens, r.cost) for r in rows],
            )
