"""The TinyDB store's conversations and messages.

A turn appends to the conversation's newest message file (a journal: a line per message) and then
to its scope index's journal of ordering keys; the conversation's ``message_count`` and
``updated_at`` are read from the message files, so they never disagree with them."""

from __future__ import annotations

import bisect
import dataclasses
import functools
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tinydb import where

from core.store.base import (
    ConversationRecord,
    MessageRecord,
)
from core.store.tinydb_base import TinyDBFiles
from core.store.tinydb_files import AtomicJSONStorage
from core.store.tinydb_journal import JOURNAL_SUFFIX, Lines, append_lines, read_lines, rewrite_lines
from core.store.tinydb_layout import (
    CONVERSATION_TABLE,
    SCOPE_TABLE,
    chunk_first_seq,
    chunk_is_full,
    scope_entry,
)

# Touches a scope index's journal holds before they are written into the index.
TOUCHES_KEPT = 64


def _add_touch(touched: dict[str, float], doc: dict[str, Any]) -> None:
    touched[doc["id"]] = max(doc["updated_at"], touched.get(doc["id"], doc["updated_at"]))


def _add_message(by_seq: dict[int, MessageRecord], doc: dict[str, Any]) -> None:
    by_seq[doc["seq"]] = MessageRecord.from_dict(doc)


@functools.lru_cache(maxsize=16384)
def touches_file(index: Path) -> Path:
    """The journal of a scope index's newer ordering keys (``tinydb_journal``), next to it."""
    return index.with_suffix(JOURNAL_SUFFIX)


class ConversationFiles(TinyDBFiles):
    """Conversations, their scope indexes and their message files."""

    async def put_conversation(self, conv: ConversationRecord) -> None:
        await self._run(self._put_conversation, conv)

    def _put_conversation(self, conv: ConversationRecord) -> None:
        old = self._get_conversation(conv.id)
        self._index_add(conv.scope, [conv])
        path = self._layout.conversation_file(conv.id)
        with self._locked(path.parent):
            self._put_single(path, CONVERSATION_TABLE, conv.to_dict())
        if old and old.scope != conv.scope:
            self._index_remove(old.scope, [conv.id])

    def _index_add(self, scope: str, convs: Sequence[ConversationRecord]) -> None:
        path = self._layout.scope_file(scope)
        with self._locked(path):
            table = self._table(path, SCOPE_TABLE)
            ids = [c.id for c in convs]
            if table.contains(where("id").one_of(ids)):
                table.remove(where("id").one_of(ids))
            table.insert_multiple(scope_entry(c) for c in convs)

    def _index_remove(self, scope: str, ids: Sequence[str]) -> None:
        ids = list(ids)
        path = self._layout.scope_file(scope)
        with self._locked(path):
            table = self._table(path, SCOPE_TABLE)
            if table.contains(where("id").one_of(ids)):
                table.remove(where("id").one_of(ids))

    def _index_entries(self, scope: str) -> list[dict[str, Any]]:
        path = self._layout.scope_file(scope)
        with self._locked(path):
            return self._index_entries_unlocked(path)

    def _index_entries_unlocked(self, path: Path) -> list[dict[str, Any]]:
        """The index's entries, each ``updated_at`` the latest of its own and the journal's touches."""
        touched = self._touched(path)
        out = [dict(e) for e in self._table(path, SCOPE_TABLE).all()]
        for e in out:
            e["updated_at"] = max(e["updated_at"], touched.get(e["id"], e["updated_at"]))
        return out

    def _touched(self, path: Path, lines: Lines | None = None) -> dict[str, float]:
        """The newest key of each conversation in the index's touch journal (read, never kept;
        ``lines``: the journal as just read under the index's lock)."""
        journal = touches_file(path)
        if lines is None:
            lines = read_lines(journal, self._cache)
        return self._folds.fold(journal, lines, dict, _add_touch)

    def _index_key(self, path: Path, conversation_id: str, touches: Lines) -> float | None:
        """One entry's ordering key (None when the index lacks it), read without TinyDB's table."""
        data = AtomicJSONStorage(path, self._ops, self._cache).read() or {}
        for e in data.get(SCOPE_TABLE, {}).values():  # the cached file: only read
            if e["id"] == conversation_id:
                touched = self._touched(path, touches).get(conversation_id, e["updated_at"])
                key: float = max(e["updated_at"], touched)
                return key
        return None

    async def get_conversation(self, conversation_id: str) -> ConversationRecord | None:
        return await self._read(self._get_conversation, conversation_id)

    def _get_conversation(self, conversation_id: str) -> ConversationRecord | None:
        path = self._layout.conversation_file(conversation_id)
        with self._locked(path.parent):
            doc = self._single(path, CONVERSATION_TABLE)
            if doc is None:
                return None
            return self._with_counters(doc)

    def _with_counters(self, doc: dict[str, Any]) -> ConversationRecord:
        """The record with ``message_count`` and ``updated_at`` read from its message files.

        Appending a message therefore writes no conversation record (one file fewer per turn).
        """
        cid = doc["id"]
        chunks = self._chunks(cid)
        last = self._last_lines(cid, chunks)
        count = self._count(cid, chunks, last)
        updated_at = doc["updated_at"]
        if count:
            # The newest file holds the newest messages; only two writers racing across a file
            # boundary could put a later time in the previous file, and then it is off by moments.
            times = [m.created_at for m in self._chunk_messages(cid, chunks[-1], last).values()]
            updated_at = max([updated_at, *times])
        return ConversationRecord.from_dict({**doc, "message_count": count, "updated_at": updated_at})

    async def list_conversations(self, scope: str, limit: int = 20) -> list[ConversationRecord]:
        """The scope's conversations, most recently updated first (reads the scope's index only)."""
        return await self._read(self._list_conversations, scope, limit)

    def _list_conversations(self, scope: str, limit: int) -> list[ConversationRecord]:
        entries = sorted(self._index_entries(scope), key=lambda e: e["updated_at"], reverse=True)
        out: list[ConversationRecord] = []
        for entry in entries:
            if len(out) >= limit:
                break
            conv = self._get_conversation(entry["id"])
            if conv is not None and conv.scope == scope:
                out.append(conv)
        return sorted(out, key=lambda c: c.updated_at, reverse=True)

    async def find_conversation_by_source(self, scope: str, source: str) -> ConversationRecord | None:
        return await self._read(self._find_conversation_by_source, scope, source)

    def _find_conversation_by_source(self, scope: str, source: str) -> ConversationRecord | None:
        for entry in self._index_entries(scope):
            if entry.get("source") == source:
                conv = self._get_conversation(entry["id"])
                if conv is not None and conv.scope == scope and conv.source == source:
                    return conv
        return None

    async def move_conversations(self, from_scope: str, to_scope: str) -> int:
        """Give every conversation of one scope to another; returns how many moved."""
        return await self._run(self._move_conversations, from_scope, to_scope)

    def _move_conversations(self, from_scope: str, to_scope: str) -> int:
        if from_scope == to_scope:
            return len(self._list_conversations(from_scope, limit=2**31))
        convs = [
            c
            for c in (self._get_conversation(e["id"]) for e in self._index_entries(from_scope))
            if c is not None and c.scope == from_scope
        ]
        if not convs:
            return 0
        # New index first, then each record, then the old index: every step is readable.
        self._index_add(to_scope, convs)
        moved: list[str] = []
        for c in convs:
            path = self._layout.conversation_file(c.id)
            with self._locked(path.parent):
                doc = self._single(path, CONVERSATION_TABLE)
                if doc and doc["scope"] == from_scope:
                    doc["scope"] = to_scope
                    self._put_single(path, CONVERSATION_TABLE, doc)
                    moved.append(c.id)
        self._index_remove(from_scope, [c.id for c in convs])
        return len(moved)

    # messages

    def _chunks(self, conversation_id: str) -> list[int]:
        """First seqs of the conversation's chunk files, ascending (the folder is the truth)."""
        try:
            names = os.listdir(self._layout.conversation_dir(conversation_id))
        except FileNotFoundError:
            return []
        return sorted(s for s in map(chunk_first_seq, names) if s is not None)

    def _chunk_messages(self, conversation_id: str, first: int, lines: Lines | None = None) -> dict[int, MessageRecord]:
        """A chunk's messages by seq (a later line of a seq is the message updated); read under the
        conversation's lock, never kept: a turn reads them whole, so only new lines are converted.
        ``lines``: the chunk as already read by the same operation (each read is a whole file)."""
        path = self._layout.chunk_file(conversation_id, first)
        if lines is None:
            lines = read_lines(path, self._cache)
        return self._folds.fold(path, lines, dict, _add_message)

    def _last_lines(self, conversation_id: str, chunks: list[int]) -> Lines | None:
        """The newest chunk as read now (None without messages): one read serves the count and the rest."""
        if not chunks:
            return None
        return read_lines(self._layout.chunk_file(conversation_id, chunks[-1]), self._cache)

    def _count(self, conversation_id: str, chunks: list[int], last: Lines | None = None) -> int:
        if not chunks:
            return 0
        return chunks[-1] + len(self._chunk_messages(conversation_id, chunks[-1], last))

    async def append_messages(self, messages: list[MessageRecord]) -> list[MessageRecord]:
        """Append to one conversation; durable on return. A batch always lands in one file."""
        if not messages:
            return []
        return await self._append(self._append_messages, messages)

    def _append_messages(self, messages: list[MessageRecord]) -> list[MessageRecord]:
        cid = messages[0].conversation_id
        if any(m.conversation_id != cid for m in messages):
            raise ValueError("append_messages takes messages of one conversation")
        folder = self._layout.conversation_dir(cid)
        with self._locked(folder):
            chunks = self._chunks(cid)
            last = self._last_lines(cid, chunks)
            count = self._count(cid, chunks, last)
            first, lines = count, None
            full = last is None or chunk_is_full(count - chunks[-1], len(last.raw), self._chunk_size, self._chunk_bytes)
            if not full:  # the newest chunk takes the messages
                first, lines = chunks[-1], last
            out = [dataclasses.replace(m, seq=count + i) for i, m in enumerate(messages)]
            path = self._layout.chunk_file(cid, first)
            if lines is None:
                lines = read_lines(path, self._cache)
            append_lines(path, lines, [m.to_dict() for m in out], self._ops, self._cache, self._flush_set())
            doc = self._single(self._layout.conversation_file(cid), CONVERSATION_TABLE)
        if doc is not None:
            self._index_touch(doc["scope"], cid, max(doc["updated_at"], out[-1].created_at))
        return out

    def _index_touch(self, scope: str, conversation_id: str, updated_at: float) -> None:
        """Keep the scope index's ordering key in step (only for entries it already has).

        The new key is a line appended to the index's touch journal, not a rewrite of the index;
        once the journal is long, its latest keys are written into the index and it is deleted.
        """
        path = self._layout.scope_file(scope)
        with self._locked(path):
            journal = touches_file(path)
            lines = read_lines(journal, self._cache)  # read once: the key and the append both use it
            key = self._index_key(path, conversation_id, lines)
            if key is None or key >= updated_at:
                return
            touch = {"id": conversation_id, "updated_at": updated_at}
            append_lines(journal, lines, [touch], self._ops, self._cache, self._flush_set())
            if len(lines.docs) + 1 < TOUCHES_KEPT:
                return
            if self._on_loop():
                self._compact_later(path, self._fold_touches)
                return
            self._fold_touches_unlocked(path)

    def _fold_touches(self, path: Path) -> None:
        with self._locked(path):
            self._fold_touches_unlocked(path)

    def _fold_touches_unlocked(self, path: Path) -> None:
        """Write the touch journal's keys into the scope index, then delete the journal."""
        journal = touches_file(path)
        if not read_lines(journal, self._cache).docs:
            return
        entries = self._index_entries_unlocked(path)
        keys = [({"updated_at": e["updated_at"]}, where("id") == e["id"]) for e in entries]
        self._table(path, SCOPE_TABLE).update_multiple(keys)
        # The index's new keys are durable before the touches go (a lost touch would reorder).
        self._ops.sync_folders({path.parent}, self._layout.root)
        self._forget(journal)

    async def update_message(self, message: MessageRecord) -> None:
        """Replace the stored message with the same conversation and ``seq`` (no-op when absent)."""
        await self._append(self._update_message, message)

    def _update_message(self, message: MessageRecord) -> None:
        cid = message.conversation_id
        with self._locked(self._layout.conversation_dir(cid)):
            chunks = self._chunks(cid)
            i = bisect.bisect_right(chunks, message.seq) - 1
            if i < 0 or message.seq < 0:
                return
            path = self._layout.chunk_file(cid, chunks[i])
            lines = read_lines(path, self._cache)
            if any(d["seq"] == message.seq for d in lines.docs):  # the message's new state, a line
                append_lines(path, lines, [message.to_dict()], self._ops, self._cache, self._flush_set())

    async def get_messages(self, conversation_id: str, last: int | None = None) -> list[MessageRecord]:
        """The conversation's messages in order; only the last ``last`` ones when given."""
        return await self._read(self._get_messages, conversation_id, last)

    def _get_messages(self, cid: str, last: int | None) -> list[MessageRecord]:
        with self._locked(self._layout.conversation_dir(cid)):
            chunks = self._chunks(cid)
            newest = self._last_lines(cid, chunks)
            count = self._count(cid, chunks, newest)
            start = max(0, count - last) if last else 0
            out: list[MessageRecord] = []
            ends = [*chunks[1:], count] if chunks else []
            for first, end in zip(chunks, ends, strict=True):
                if end <= start:
                    continue
                lines = newest if first == chunks[-1] else None
                out.extend(m for seq, m in self._chunk_messages(cid, first, lines).items() if seq >= start)
        return sorted(out, key=lambda m: m.seq)

    async def truncate_messages(self, conversation_id: str, from_seq: int) -> None:
        """Delete the messages with ``seq >= from_seq`` (used by /retry)."""
        await self._run(self._truncate_messages, conversation_id, from_seq)

    def _truncate_messages(self, cid: str, from_seq: int) -> None:
        from_seq = max(0, from_seq)
        path = self._layout.conversation_file(cid)
        with self._locked(path.parent):
            doc = self._single(path, CONVERSATION_TABLE)
            if doc is not None:
                # Counters come from the message files; pin updated_at first so it never moves back.
                before = self._with_counters(doc)
                if doc["updated_at"] < before.updated_at:
                    self._put_single(path, CONVERSATION_TABLE, {**doc, "updated_at": before.updated_at})
            chunks = self._chunks(cid)
            count = self._count(cid, chunks)
            # Newest first, so every crash state is a contiguous prefix.
            for first in reversed(chunks):
                if first >= from_seq:
                    self._forget(self._layout.chunk_file(cid, first))
                    continue
                if from_seq < count:  # the chunk replaced whole by the messages it keeps
                    messages = self._chunk_messages(cid, first)
                    kept = [messages[seq].to_dict() for seq in sorted(messages) if seq < from_seq]
                    rewrite_lines(self._layout.chunk_file(cid, first), kept, self._ops, self._cache, self._flush_set())
                break

    def _delete_conversation_files(self, conversation_id: str) -> None:
        folder = self._layout.conversation_dir(conversation_id)
        with self._locked(folder):
            # Messages first, the record last: a half-deleted conversation still has its record.
            for first in reversed(self._chunks(conversation_id)):
                self._forget(self._layout.chunk_file(conversation_id, first))
            self._forget(self._layout.conversation_file(conversation_id))
            shutil.rmtree(folder, ignore_errors=True)
