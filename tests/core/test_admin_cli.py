"""The operator subcommands: ferry users, export, backup and restore (backup while bots write)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import pytest

from bots import admin_cli
from core.settings import Settings
from core.store.base import ConversationRecord, MessageRecord, UsageRecord, UserRecord
from core.store.tinydb_store import TinyDBStore
from tests.core.test_userdata import SCHEMA, schema_errors

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_795_000_000.0


def settings_for(data: Path) -> Settings:
    return Settings.from_values({"FERRY_DATA_DIR": str(data), "FERRY_ACCESS": "approval"})


async def ferry(data: Path, *argv: str) -> int:
    """Run ``ferry <argv>`` the way bots/cli.py does, on the store in ``data``."""
    parser = argparse.ArgumentParser(prog="ferry")
    admin_cli.add_subcommands(parser.add_subparsers(dest="command", required=True))
    return await admin_cli.run(parser.parse_args(argv), settings_for(data))


async def seeded(data: Path) -> None:
    store = TinyDBStore(data)
    await store.open()
    await store.put_user(UserRecord("u-ani", ("telegram:11",), "Ani", "pending", created_at=T0))
    await store.put_user(UserRecord("u-budi", ("signal:22",), "Budi", "approved", created_at=T0 + 1))
    await store.put_conversation(ConversationRecord("c1", "user:u-budi", "Resep rendang", created_at=T0, updated_at=T0))
    await store.append_messages(
        [
            MessageRecord("m1", "c1", "user", "Bagaimana cara membuat rendang?", T0, author="signal:22"),
            MessageRecord("m2", "c1", "assistant", "Pertama, siapkan daging…", T0 + 5, model="gpt-4o-mini"),
        ]
    )
    await store.add_usage(UsageRecord("u-budi", "c1", "gpt-4o-mini", 100, 20, 0.0001, T0 + 5))
    await store.close()


async def test_users_lists_and_changes_users(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    await seeded(data)
    assert await ferry(data, "users") == 0
    out = capsys.readouterr().out
    assert "u-ani  pending  Ani  [telegram:11]" in out
    assert "u-budi  approved  Budi  [signal:22]" in out
    assert out.strip().endswith("2 users")

    assert await ferry(data, "users", "approve", "telegram:11") == 0
    assert await ferry(data, "users", "block", "u-budi") == 0
    assert await ferry(data, "users", "admin", "telegram:11") == 0
    assert await ferry(data, "users", "unadmin", "telegram:11") == 1  # the last admin stays
    assert "last admin" in capsys.readouterr().err
    assert await ferry(data, "users", "approve", "telegram:404") == 1
    assert await ferry(data, "users", "block") == 1
    store = TinyDBStore(data)
    await store.open()
    ani, budi = await store.get_user("u-ani"), await store.get_user("u-budi")
    assert ani is not None and ani.status == "approved" and ani.is_admin
    assert budi is not None and budi.status == "blocked"
    assert await store.get_meta("has_admin") is True
    await store.close()


async def test_export_writes_the_documented_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    await seeded(data)
    assert await ferry(data, "export", "--user", "signal:22", "--out", str(tmp_path / "out"), "--lang", "id") == 0
    written = sorted((tmp_path / "out").iterdir())
    assert [p.suffix for p in written] == [".json", ".md"]
    doc = json.loads(written[0].read_text(encoding="utf-8"))
    assert schema_errors(doc, SCHEMA) == []
    assert doc["conversations"][0]["messages"][0]["content"] == "Bagaimana cara membuat rendang?"
    md = written[1].read_text(encoding="utf-8")
    assert md.startswith("# Percakapan Ferry milik Budi") and "**Anda**" in md
    assert await ferry(data, "export", "--user", "nobody", "--out", str(tmp_path / "x")) == 1


WRITER = """
import asyncio, sys
from pathlib import Path
from core.store.base import ConversationRecord, MessageRecord, UsageRecord
from core.store.tinydb_store import TinyDBStore

async def main(data, name):
    store = TinyDBStore(Path(data))
    await store.open()
    cid = "conv-" + name
    await store.put_conversation(ConversationRecord(cid, "user:" + name, created_at=1, updated_at=1))
    i = 0
    while True:
        await store.append_messages([MessageRecord(f"{name}-{i}", cid, "user", f"{name} says {i}", 2.0 + i)])
        await store.add_usage(UsageRecord(name, cid, "m", 1, 1, 0.0, 1795000000.0 + i))
        await store.set_meta("last-" + name, i)
        print(i, flush=True)
        i += 1

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


class Writer:
    """A separate process writing to the store; ``acked`` is the last write it reported done."""

    def __init__(self, data: Path, name: str) -> None:
        self.data, self.name, self.acked = data, name, -1
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WRITER, str(self.data), self.name, cwd=ROOT, stdout=asyncio.subprocess.PIPE
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.acked = int(line)

    async def wait_for(self, count: int) -> None:
        while self.acked < count:
            assert self.proc is not None and self.proc.returncode is None, "writer died"
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        await self.proc.wait()
        self._reader.cancel()


async def test_backup_while_two_processes_write_then_restore_has_every_acknowledged_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    await seeded(data)
    writers = [Writer(data, "alpha"), Writer(data, "beta")]
    for w in writers:
        await w.start()
    try:
        await asyncio.wait_for(asyncio.gather(*(w.wait_for(20) for w in writers)), 120)
        acknowledged = {w.name: w.acked for w in writers}
        assert await ferry(data, "backup", str(tmp_path / "backup")) == 0
        # The writers carry on after the backup released the store.
        await asyncio.wait_for(asyncio.gather(*(w.wait_for(acknowledged[w.name] + 10) for w in writers)), 120)
    finally:
        for w in writers:
            await w.stop()
    assert "Backed up" in capsys.readouterr().out

    restored = tmp_path / "restored"
    assert await ferry(restored, "restore", str(tmp_path / "backup")) == 0
    assert await ferry(restored, "restore", str(tmp_path / "backup")) == 1  # it holds users now
    assert "--yes" in capsys.readouterr().err
    assert await ferry(restored, "restore", "--yes", str(tmp_path / "backup")) == 0

    store = TinyDBStore(restored)
    await store.open()
    try:
        assert {u.id for u in await store.list_users()} == {"u-ani", "u-budi"}
        assert (await store.get_messages("c1"))[0].content == "Bagaimana cara membuat rendang?"
        for name, acked in acknowledged.items():
            messages = await store.get_messages("conv-" + name)
            count = len(messages)
            # Every acknowledged write is there, in order, with nothing torn or missing between.
            assert count >= acked + 1
            assert [m.content for m in messages] == [f"{name} says {i}" for i in range(count)]
            conv = await store.get_conversation("conv-" + name)
            assert conv is not None and conv.message_count == count
            assert [c.id for c in await store.list_conversations("user:" + name)] == ["conv-" + name]
            # One moment of the store: each later step of the loop is at most one write behind.
            answers = (await store.usage_totals(name, 0)).tokens // 2
            assert answers in (count - 1, count)
            assert await store.get_meta("last-" + name) in (count - 2, count - 1) or count == 1
        # The restored store takes new writes.
        await store.append_messages([MessageRecord("new", "c1", "user", "after restore", T0 + 9)])
        assert len(await store.get_messages("c1")) == 3
    finally:
        await store.close()


async def test_backup_refuses_a_folder_with_files_in_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    await seeded(data)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    assert await ferry(data, "backup", str(tmp_path / "taken")) == 1
    assert "not empty" in capsys.readouterr().err
    assert await ferry(tmp_path / "other", "restore", str(tmp_path / "taken")) == 1
    assert "not a Ferry backup" in capsys.readouterr().err
