"""The TinyDB store's intake: one small file per chat holding its line of received messages.

::

    intake/<platform>/<h:2>/<h>.json     a chat's records (table "intake", doc id = seq + 1)

A record is written (atomically, through the group commit like every other write) before the
messenger is told the message arrived, and rewritten when it is answered, shown and delivered.
A delivered record keeps only its key; it is dropped once older than ``INTAKE_RETENTION`` or
beyond the chat's newest ``INTAKE_KEEP``, and a file holding nothing else is deleted at the next
start, so a file stays small and the platform's folder only as wide as its chats of the last day:
recovery at start reads that folder alone.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinydb import where
from tinydb.table import Document

from core.store.base import INTAKE_RETENTION, IntakeRecord, advance, stale_intake
from core.store.tinydb_base import TinyDBFiles
from core.store.tinydb_layout import key_hash

INTAKE_TABLE = "intake"


def intake_dir(root: Path, platform: str) -> Path:
    """The folder of a platform's chat files (a name that is not a plain word is hashed)."""
    name = platform if platform.isalnum() else key_hash(platform)
    return root / "intake" / name


def intake_file(root: Path, chat: str) -> Path:
    """The file of one chat's line."""
    h = key_hash(chat)
    return intake_dir(root, chat.partition(":")[0]) / h[:2] / f"{h}.json"


class IntakeFiles(TinyDBFiles):
    """Received messages, a file per chat, until their answers are delivered."""

    async def record(self, rec: IntakeRecord) -> IntakeRecord | None:
        """Add the message to its chat's file, durably; None when its key is there already."""
        return await self._run(self._record, rec)

    def _record(self, rec: IntakeRecord) -> IntakeRecord | None:
        path = intake_file(self._layout.root, rec.chat)
        with self._locked(path):
            table = self._table(path, INTAKE_TABLE)
            docs = table.all()
            if any(d["key"] == rec.key for d in docs):
                return None
            seq = max((d["seq"] for d in docs), default=-1) + 1
            gone = stale_intake([IntakeRecord.from_dict(dict(d)) for d in docs], rec.received_at)
            if gone:  # delivered records no messenger sends again: the file stays one chat's recent line
                table.remove(doc_ids=[d.doc_id for d in docs if d["key"] in gone])
            stored = IntakeRecord.from_dict({**rec.to_dict(), "seq": seq})
            table.insert(Document(stored.to_dict(), doc_id=seq + 1))
            return stored

    async def unfinished(self, platform: str) -> list[IntakeRecord]:
        """Every chat file of the platform read once; a file left with only old delivered records goes."""
        return await self._read(self._unfinished, platform)

    def _unfinished(self, platform: str) -> list[IntakeRecord]:
        lines: list[list[IntakeRecord]] = []
        for path in _chat_files(intake_dir(self._layout.root, platform)):
            with self._locked(path):
                docs = [IntakeRecord.from_dict(dict(d)) for d in self._table(path, INTAKE_TABLE).all()]
                if docs and all(d.status == "delivered" for d in docs):
                    newest = max(d.received_at for d in docs)
                    if newest < time.time() - INTAKE_RETENTION:
                        self._forget(path)
                    continue
            line = sorted((d for d in docs if d.status != "delivered"), key=lambda d: d.seq)
            if line:
                lines.append(line)
        lines.sort(key=lambda line: line[0].received_at)
        return [rec for line in lines for rec in line]

    # The answer and the mark naming the message about to show it are written between the model's
    # last piece and the final message (the send waits for them): first in line, like the answer.
    async def mark_answered(self, chat: str, key: str, answer: list[dict[str, Any]]) -> None:
        await self._finishing(self._mark, chat, key, lambda r: advance(r, "answered", answer=answer))

    async def mark_shown(self, chat: str, key: str, ref: str) -> None:
        await self._finishing(self._mark, chat, key, lambda r: advance(r, "received", ref=ref))

    async def mark_delivered(self, chat: str, key: str, ref: str | None) -> None:
        await self._later(self._mark, chat, key, lambda r: advance(r, "delivered", ref=ref))

    def _mark(self, chat: str, key: str, change: Callable[[IntakeRecord], IntakeRecord]) -> None:
        path = intake_file(self._layout.root, chat)
        with self._locked(path):
            table = self._table(path, INTAKE_TABLE)
            doc = table.get(where("key") == key)
            if not isinstance(doc, Document):
                return
            old = IntakeRecord.from_dict(dict(doc))
            new = change(old)
            if new != old:
                table.upsert(Document(new.to_dict(), doc_id=doc.doc_id))


def _chat_files(folder: Path) -> list[Path]:
    """The chat files under a platform's folder (no temporary files)."""
    out: list[Path] = []
    if not folder.is_dir():
        return out
    for shard in os.scandir(folder):
        if shard.is_dir():
            out.extend(
                Path(f.path) for f in os.scandir(shard.path) if f.name.endswith(".json") and not f.name.startswith(".")
            )
    return sorted(out)
