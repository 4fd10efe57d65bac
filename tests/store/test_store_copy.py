"""``ferry store copy``: TinyDB → PostgreSQL → TinyDB keeps everything; an interrupted copy resumes."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from bots import store_cli
from core.store.base import IntakeRecord, Store, UsageRecord, UserRecord
from core.store.store_copy import copy_store
from core.store.tinydb_store import TinyDBStore
from tests.conftest import make_settings
from tests.store.pg import pg_schema, schema_url
from tests.store.test_contract import DAY, T0, conv, msg

USERS = 5


async def fill(store: Store) -> None:
    """A small installation: users with identities, own and group conversations, usage, settings."""
    for u in range(USERS):
        await store.put_user(
            UserRecord(id=f"u{u}", identities=(f"telegram:{u}", f"signal:{u}"), status="approved",
                       created_at=T0 + u, extra={"tz": "Asia/Jakarta"})
        )
        await store.put_conversation(conv(f"c{u}", f"user:u{u}", title=f"chat {u}"))
        await store.append_messages([msg(f"c{u}", i, "user" if i % 2 == 0 else "assistant") for i in range(30 * u)])
        await store.add_usage(UsageRecord(f"u{u}", f"c{u}", "gpt-4o", 10 * u, 5, 0.25, T0 + 5))
        await store.add_usage(UsageRecord(f"u{u}", f"c{u}", "mini", 1, 1, 0.125, T0 + DAY + 5))
    await store.put_conversation(conv("g1", "group:telegram:-100", source="whatsapp:abc"))
    await store.append_messages([msg("g1", i) for i in range(250)])
    await store.set_meta("budget", {"daily": 5.0})
    await store.set_meta("has_admin", True)
    # Messages received before the bots stopped, not answered yet (one answered, not delivered).
    answer = [{"type": "final", "text": "a", "buttons": [], "interrupted": False, "streamed": True}]
    for n, chat in enumerate(("telegram:1", "telegram:1", "telegram:1", "signal:+62", "telegram:2")):
        await store.record(IntakeRecord(f"{chat}:{n}", chat, {"text": str(n)}, T0 + n, route={"n": n}))
    await store.mark_delivered("telegram:1", "telegram:1:1", "m1")
    await store.mark_shown("telegram:1", "telegram:1:2", "m2")
    await store.mark_answered("telegram:1", "telegram:1:2", answer)


async def snapshot(store: Store) -> dict[str, object]:
    """Everything a person or an admin could notice, in comparable form."""
    users = await store.list_users()
    convs = [await store.get_conversation(c) for c in ["g1", *(f"c{u}" for u in range(USERS))]]
    return {
        "users": users,
        "found": [await store.find_user(f"signal:{u}") for u in range(USERS)],
        "conversations": [(c.id, c.scope, c.title, c.source, c.message_count) for c in convs if c],
        "messages": {c.id: await store.get_messages(c.id) for c in convs if c},
        "usage": [await store.usage_totals(f"u{u}", T0) for u in range(USERS)],
        "usage_day2": [await store.usage_totals(f"u{u}", T0 + DAY) for u in range(USERS)],
        "global": await store.global_usage_totals(0),
        "meta": [await store.get_meta("budget"), await store.get_meta("has_admin")],
        "intake": [
            (r.key, r.chat, r.message, r.route, r.received_at, r.status, r.answer, r.ref)
            for p in ("telegram", "signal")
            for r in await store.unfinished(p)
        ],
    }


async def copy_cli(source: str, destination: str) -> tuple[int, str]:
    out = io.StringIO()
    code = await store_cli.run(argparse.Namespace(source=source, destination=destination), make_settings(), out)
    return code, out.getvalue()


async def test_tinydb_to_postgres_and_back_keeps_everything(tmp_path: Path) -> None:
    src = TinyDBStore(tmp_path / "data")
    await src.open()
    await fill(src)
    before = await snapshot(src)
    await src.close()

    with pg_schema() as schema:
        code, out = await copy_cli(str(tmp_path / "data"), schema_url(schema))
        assert code == 0, out
        assert "The counts agree" in out and "messages 550" in out and "unanswered messages 4" in out
        for _ in range(2):  # the second run finds everything there and adds nothing (usage included)
            code, out = await copy_cli(schema_url(schema), str(tmp_path / "back"))
            assert code == 0, out

    back = TinyDBStore(tmp_path / "back")
    await back.open()
    try:
        assert await snapshot(back) == before
    finally:
        await back.close()


class Interrupted(Exception):
    """Stands for Ctrl-C or a lost connection halfway through a copy."""


async def test_an_interrupted_copy_resumes_without_duplicating_anything(tmp_path: Path) -> None:
    src = TinyDBStore(tmp_path / "data")
    await src.open()
    await fill(src)
    before = await snapshot(src)
    with pg_schema() as schema:
        dst, dst_dump = store_cli.open_spec(schema_url(schema), source=False)
        _, src_dump = store_cli.open_spec(str(tmp_path / "data"), source=True)
        await dst.open()
        try:
            for stop_at in ("conversations", "usage"):
                seen: list[str] = []

                def progress(stage: str, done: int, total: int, stop_at: str = stop_at, seen: list[str] = seen) -> None:
                    seen.append(stage)
                    if seen.count(stop_at) == 3:  # the third conversation (or user's usage) is written
                        raise Interrupted

                with pytest.raises(Interrupted):
                    await copy_store(src, src_dump, dst, dst_dump, progress, parallel=1)
            result = await copy_store(src, src_dump, dst, dst_dump, lambda *_: None)
            assert result.ok, result
            assert await snapshot(dst) == before
            # Running it once more changes nothing.
            again = await copy_store(src, src_dump, dst, dst_dump, lambda *_: None)
            assert again.ok and await snapshot(dst) == before
        finally:
            await dst.close()
            await src.close()


async def test_a_folder_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, _ = await copy_cli(str(tmp_path / "empty"), str(tmp_path / "other"))
    assert code == 1
    assert not (tmp_path / "other").exists()
