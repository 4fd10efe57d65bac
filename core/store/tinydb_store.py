"""The embedded default store: TinyDB files in one data folder, shared by the bot processes.

Layout and file format: ``core/store/tinydb_layout.py``. Atomic writes, locks and the TinyDB
Storage: ``core/store/tinydb_files.py``. Each operation reads and rewrites only the few small files
it concerns, under their cross-process lock, and re-reads a file whenever its bytes changed, so two
processes never lose each other's updates. The file I/O runs in a worker thread.

A turn writes the conversation's newest message file and then its scope index's ordering key; the
conversation's ``message_count`` and ``updated_at`` are read from the message files, so they never
disagree with them. An operation that touches several files writes them in an order that keeps
every crash state readable (a scope index entry before the conversation that points at it; readers
check the conversation record itself, so a stale index entry is ignored).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import copy
import dataclasses
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from tinydb import TinyDB, where
from tinydb.table import Document, Table

from core.store.base import (
    ConversationRecord,
    MessageRecord,
    StoreError,
    UsageRecord,
    UsageTotals,
    UserRecord,
)
from core.store.tinydb_files import (
    LOCK_STRIPES,
    TEMP_SUFFIX,
    AtomicJSONStorage,
    FileCache,
    FileOps,
    GroupCommit,
    LockStripes,
    read_bytes,
    store_error,
    sweep_temp_files,
)
from core.store.tinydb_layout import (
    CHUNK_BYTES,
    CHUNK_SIZE,
    CONVERSATION_TABLE,
    IDENTITY_TABLE,
    MESSAGE_TABLE,
    META_TABLE,
    SCHEMA_TABLE,
    SCOPE_TABLE,
    SINGLE_DOC_ID,
    USAGE_TABLE,
    USER_TABLE,
    Layout,
    chunk_first_seq,
    chunk_is_full,
    identity_entry,
    message_doc_id,
    scope_entry,
    utc_day,
)
from core.store.tinydb_migrations import MIGRATIONS, Migration, MigrationContext, check_version, pending

R = TypeVar("R")


def _user_from_doc(doc: dict[str, Any]) -> UserRecord:
    # Documents share nested objects with the file cache; the caller gets its own copy.
    return UserRecord.from_dict({**doc, "extra": copy.deepcopy(doc.get("extra", {}))})


def _user_scope(user_id: str) -> str:
    return f"user:{user_id}"


def _totals(docs: Sequence[dict[str, Any]], since: float) -> UsageTotals:
    by_model: dict[str, tuple[int, int, float]] = {}
    p = c = 0
    cost = 0.0
    for d in sorted(docs, key=lambda d: (d["day"], d["model"])):
        if d["day"] < since:
            continue
        p += d["prompt_tokens"]
        c += d["completion_tokens"]
        cost += d["cost"]
        mp, mc, mcost = by_model.get(d["model"], (0, 0, 0.0))
        by_model[d["model"]] = (mp + d["prompt_tokens"], mc + d["completion_tokens"], mcost + d["cost"])
    return UsageTotals(prompt_tokens=p, completion_tokens=c, cost=cost, by_model=by_model)


class TinyDBStore:
    """The ``Store`` on TinyDB files under ``data_dir``; safe for several processes and threads.

    ``ops`` is the seam for the system calls that write (tests inject a full or read-only disk);
    ``migrations`` defaults to the shipped list (tests append one to prove it runs once).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        ops: FileOps | None = None,
        migrations: Sequence[Migration] = MIGRATIONS,
        chunk_size: int = CHUNK_SIZE,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        self._layout = Layout(Path(data_dir))
        self._ops = ops or FileOps()
        self._migrations = tuple(migrations)
        self._chunk_size = chunk_size
        self._chunk_bytes = chunk_bytes
        self._cache = FileCache()
        self._locks: LockStripes | None = None
        # The folders an operation's writes left to the group commit, per worker thread.
        self._unit = threading.local()
        self._commit: GroupCommit[Path] = GroupCommit(self._ops.sync_folder)

    # plumbing

    @property
    def layout(self) -> Layout:
        """Where this store keeps its files."""
        return self._layout

    async def _run(self, fn: Callable[..., R], *args: Any) -> R:
        if self._locks is None:
            raise StoreError("the store is not open; call open() first")
        return await asyncio.to_thread(self._guard, fn, *args)

    def _guard(self, fn: Callable[..., R], *args: Any) -> R:
        """Run one operation in this thread; return once its renames and deletions are durable.

        Its writes leave their folders' fsyncs to the group commit, which runs after the operation
        released its locks and joins them with concurrent operations' (one pass for many turns).
        """
        folders: set[Path] = set()
        self._unit.folders = folders
        try:
            try:
                result = fn(*args)
            except BaseException:
                self._unit.folders = None
                with contextlib.suppress(Exception):
                    self._commit.durable(folders)  # what did happen is made durable all the same
                raise
            self._unit.folders = None
            self._commit.durable(folders)
            return result
        except StoreError:
            raise
        except OSError as exc:
            raise store_error(exc, "access", Path(exc.filename or self._layout.root)) from exc

    @contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        assert self._locks is not None
        with self._locks.hold(self._layout.lock_key(path)):
            yield

    def _table(self, path: Path, name: str) -> Table:
        """A TinyDB table in ``path``; use it only while holding the file's lock."""
        folders = getattr(self._unit, "folders", None)
        db = TinyDB(storage=lambda: AtomicJSONStorage(path, self._ops, self._cache, folders))
        return db.table(name, cache_size=0)

    def _single(self, path: Path, name: str) -> dict[str, Any] | None:
        doc = self._table(path, name).get(doc_id=SINGLE_DOC_ID)
        return dict(doc) if isinstance(doc, dict) else None

    def _put_single(self, path: Path, name: str, doc: dict[str, Any]) -> None:
        self._table(path, name).upsert(Document(doc, doc_id=SINGLE_DOC_ID))

    # open and close

    async def open(self) -> None:
        """Create the folder if needed, run pending migrations, clear temp files of crashed writers."""
        await asyncio.to_thread(self._guard, self._open)

    def _open(self) -> None:
        root = self._layout.root
        try:
            self._ops.makedirs(root)
            self._ops.makedirs(self._layout.locks_dir)
        except OSError as exc:
            raise store_error(exc, "create the data folder", root) from exc
        locks = LockStripes(self._layout.locks_dir)
        try:
            with locks.hold_global():
                self._locks = locks
                self._migrate()
                sweep_temp_files(root, self._ops)
        except BaseException:
            self._locks = None
            locks.close()
            raise

    def _migrate(self) -> None:
        path = self._layout.schema_file
        state = self._single(path, SCHEMA_TABLE) or {"schema_version": 0, "migrations": []}
        applied = list(state["migrations"])
        version = int(state["schema_version"])
        check_version(version, self._migrations)
        ctx = MigrationContext(self._layout, self._ops)
        for migration in pending(self._migrations, applied):
            migration.apply(ctx)
            applied.append(migration.name)
            version = max(version, migration.version)
            self._put_single(path, SCHEMA_TABLE, {"schema_version": version, "migrations": applied})

    async def close(self) -> None:
        """Close lock files and forget cached files; every write is already durable."""
        locks, self._locks = self._locks, None
        if locks is not None:
            locks.close()
        self._cache.clear()

    async def schema(self) -> dict[str, Any]:
        """The recorded schema version and applied migration names."""
        return await self._run(self._schema)

    def _schema(self) -> dict[str, Any]:
        with self._locked(self._layout.schema_file):
            state = self._single(self._layout.schema_file, SCHEMA_TABLE) or {}
        return copy.deepcopy(state)

    # users and identities

    async def get_user(self, user_id: str) -> UserRecord | None:
        return await self._run(self._get_user, user_id)

    def _get_user(self, user_id: str) -> UserRecord | None:
        path = self._layout.user_file(user_id)
        with self._locked(path):
            doc = self._single(path, USER_TABLE)
        return _user_from_doc(doc) if doc else None

    async def find_user(self, identity: str) -> UserRecord | None:
        return await self._run(self._find_user, identity)

    def _find_user(self, identity: str) -> UserRecord | None:
        path = self._layout.identity_file(identity)
        with self._locked(path):
            entry = self._table(path, IDENTITY_TABLE).get(where("identity") == identity)
        if not isinstance(entry, dict):
            return None
        return self._get_user(entry["user_id"])

    async def put_user(self, user: UserRecord) -> None:
        """Insert or replace a user; its identities now map to it (taken from any previous owner)."""
        await self._run(self._put_user, user)

    def _put_user(self, user: UserRecord) -> None:
        old = self._get_user(user.id)
        # Index first, record second, stale entries last: a crash leaves the user findable.
        self._set_identities(user.identities, user.id)
        path = self._layout.user_file(user.id)
        with self._locked(path):
            self._put_single(path, USER_TABLE, user.to_dict())
        if old:
            self._drop_identities([i for i in old.identities if i not in user.identities], user.id)

    def _by_shard(self, identities: Sequence[str]) -> dict[Path, list[str]]:
        shards: dict[Path, list[str]] = {}
        for ident in identities:
            shards.setdefault(self._layout.identity_file(ident), []).append(ident)
        return shards

    def _set_identities(self, identities: Sequence[str], user_id: str) -> None:
        for path, idents in self._by_shard(identities).items():
            with self._locked(path):
                table = self._table(path, IDENTITY_TABLE)
                current = {d["identity"]: d["user_id"] for d in table.all()}
                if any(current.get(i) != user_id for i in idents):
                    table.remove(where("identity").one_of(idents))
                    table.insert_multiple(identity_entry(i, user_id) for i in idents)

    def _drop_identities(self, identities: Sequence[str], user_id: str) -> None:
        """Remove index entries that still point at ``user_id`` (not ones re-pointed elsewhere)."""
        for path, idents in self._by_shard(identities).items():
            with self._locked(path):
                table = self._table(path, IDENTITY_TABLE)
                cond = where("identity").one_of(idents) & (where("user_id") == user_id)
                if table.contains(cond):
                    table.remove(cond)

    async def delete_user(self, user_id: str) -> None:
        """Delete the user's record, identities, own conversations and messages, and usage."""
        await self._run(self._delete_user, user_id)

    def _delete_user(self, user_id: str) -> None:
        user = self._get_user(user_id)
        scope = _user_scope(user_id)
        scope_file = self._layout.scope_file(scope)
        with self._locked(scope_file):
            entries = [dict(e) for e in self._table(scope_file, SCOPE_TABLE).all()]
        for entry in entries:
            conv = self._get_conversation(entry["id"])
            if conv is None or conv.scope == scope:
                self._delete_conversation_files(entry["id"])
        with self._locked(scope_file):
            self._forget(scope_file)
        if user:
            self._drop_identities(list(user.identities), user_id)
        self._delete_usage(user_id)
        # The record goes last, so an interrupted delete can simply be run again.
        path = self._layout.user_file(user_id)
        with self._locked(path):
            self._forget(path)

    def _forget(self, path: Path) -> None:
        self._cache.drop(path)
        self._ops.remove(path, getattr(self._unit, "folders", None))

    def _delete_conversation_files(self, conversation_id: str) -> None:
        folder = self._layout.conversation_dir(conversation_id)
        with self._locked(folder):
            # Messages first, the record last: a half-deleted conversation still has its record.
            for first in reversed(self._chunks(conversation_id)):
                self._forget(self._layout.chunk_file(conversation_id, first))
            self._forget(self._layout.conversation_file(conversation_id))
            shutil.rmtree(folder, ignore_errors=True)

    def _delete_usage(self, user_id: str) -> None:
        path = self._layout.user_usage_file(user_id)
        with self._locked(path):
            days = [dict(d) for d in self._table(path, USAGE_TABLE).all()]
            # Deleted before the global sums are reduced: a crash between over-counts, never under.
            self._forget(path)
        if not days:
            return
        minus: dict[tuple[int, str], dict[str, Any]] = {(d["day"], d["model"]): d for d in days}

        def subtract(row: MutableMapping[str, Any]) -> None:
            d = minus.get((row["day"], row["model"]))
            if d is not None:
                for name in ("prompt_tokens", "completion_tokens", "cost"):
                    row[name] -= d[name]

        # Taken from the user's part of everyone's sums. Sums an older store kept in global.json stay
        # there, so the part may go below zero while the total over all the files stays right.
        gpath = self._layout.global_usage_part(user_id)
        with self._locked(gpath):
            table = self._table(gpath, USAGE_TABLE)
            for day, model in minus:
                cond = (where("day") == day) & (where("model") == model)
                if not table.contains(cond):
                    table.insert({"day": day, "model": model, "prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0})
            table.update(subtract, where("day").one_of(sorted({d["day"] for d in days})))
            empty = (where("prompt_tokens") == 0) & (where("completion_tokens") == 0)
            if table.contains(empty):
                table.remove(empty)

    async def list_users(self) -> list[UserRecord]:
        """Every user, oldest first (an admin operation: it reads every user file)."""
        return await self._run(self._list_users)

    def _list_users(self) -> list[UserRecord]:
        users = []
        for folder, _dirs, files in os.walk(self._layout.users_dir):
            for name in files:
                if name.startswith(".") or not name.endswith(".json"):
                    continue
                # Files are replaced atomically, so a lock-free read sees a whole file.
                raw = read_bytes(Path(folder) / name)
                if raw is None:
                    continue
                doc = json.loads(raw).get(USER_TABLE, {}).get(str(SINGLE_DOC_ID))
                if doc:
                    users.append(_user_from_doc(doc))
        return sorted(users, key=lambda u: (u.created_at, u.id))

    # conversations

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
            return [dict(e) for e in self._table(path, SCOPE_TABLE).all()]

    async def get_conversation(self, conversation_id: str) -> ConversationRecord | None:
        return await self._run(self._get_conversation, conversation_id)

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
        count = self._count(cid, chunks)
        updated_at = doc["updated_at"]
        if count:
            # The newest file holds the newest messages; only two writers racing across a file
            # boundary could put a later time in the previous file, and then it is off by moments.
            times = [d["created_at"] for d in self._chunk_table(cid, chunks[-1]).all()]
            updated_at = max([updated_at, *times])
        return ConversationRecord.from_dict({**doc, "message_count": count, "updated_at": updated_at})

    async def list_conversations(self, scope: str, limit: int = 20) -> list[ConversationRecord]:
        """The scope's conversations, most recently updated first (reads the scope's index only)."""
        return await self._run(self._list_conversations, scope, limit)

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
        return await self._run(self._find_conversation_by_source, scope, source)

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

    def _chunk_table(self, conversation_id: str, first: int) -> Table:
        return self._table(self._layout.chunk_file(conversation_id, first), MESSAGE_TABLE)

    def _count(self, conversation_id: str, chunks: list[int]) -> int:
        if not chunks:
            return 0
        return chunks[-1] + len(self._chunk_table(conversation_id, chunks[-1]))

    async def append_messages(self, messages: list[MessageRecord]) -> list[MessageRecord]:
        """Append to one conversation; durable on return. A batch always lands in one file."""
        if not messages:
            return []
        return await self._run(self._append_messages, messages)

    def _append_messages(self, messages: list[MessageRecord]) -> list[MessageRecord]:
        cid = messages[0].conversation_id
        if any(m.conversation_id != cid for m in messages):
            raise ValueError("append_messages takes messages of one conversation")
        folder = self._layout.conversation_dir(cid)
        with self._locked(folder):
            chunks = self._chunks(cid)
            count = self._count(cid, chunks)
            first = count
            if chunks:
                size = os.stat(self._layout.chunk_file(cid, chunks[-1])).st_size
                if not chunk_is_full(count - chunks[-1], size, self._chunk_size, self._chunk_bytes):
                    first = chunks[-1]
            out = [dataclasses.replace(m, seq=count + i) for i, m in enumerate(messages)]
            self._chunk_table(cid, first).insert_multiple(
                Document(m.to_dict(), doc_id=message_doc_id(m.seq)) for m in out
            )
            doc = self._single(self._layout.conversation_file(cid), CONVERSATION_TABLE)
        if doc is not None:
            self._index_touch(doc["scope"], cid, max(doc["updated_at"], out[-1].created_at))
        return out

    def _index_touch(self, scope: str, conversation_id: str, updated_at: float) -> None:
        """Keep the scope index's ordering key in step (only for entries it already has)."""
        path = self._layout.scope_file(scope)
        with self._locked(path):
            table = self._table(path, SCOPE_TABLE)
            entry = table.get(where("id") == conversation_id)
            if isinstance(entry, Document) and entry["updated_at"] < updated_at:
                table.update({"updated_at": updated_at}, doc_ids=[entry.doc_id])

    async def update_message(self, message: MessageRecord) -> None:
        """Replace the stored message with the same conversation and ``seq`` (no-op when absent)."""
        await self._run(self._update_message, message)

    def _update_message(self, message: MessageRecord) -> None:
        cid = message.conversation_id
        with self._locked(self._layout.conversation_dir(cid)):
            chunks = self._chunks(cid)
            i = bisect.bisect_right(chunks, message.seq) - 1
            if i < 0 or message.seq < 0:
                return
            table = self._chunk_table(cid, chunks[i])
            doc_id = message_doc_id(message.seq)
            if table.contains(doc_id=doc_id):
                table.update(message.to_dict(), doc_ids=[doc_id])

    async def get_messages(self, conversation_id: str, last: int | None = None) -> list[MessageRecord]:
        """The conversation's messages in order; only the last ``last`` ones when given."""
        return await self._run(self._get_messages, conversation_id, last)

    def _get_messages(self, cid: str, last: int | None) -> list[MessageRecord]:
        with self._locked(self._layout.conversation_dir(cid)):
            chunks = self._chunks(cid)
            count = self._count(cid, chunks)
            start = max(0, count - last) if last else 0
            out: list[MessageRecord] = []
            ends = [*chunks[1:], count] if chunks else []
            for first, end in zip(chunks, ends, strict=True):
                if end <= start:
                    continue
                table = self._chunk_table(cid, first)
                ids = [message_doc_id(s) for s in range(max(first, start), end)]
                docs = table.get(doc_ids=ids) if first < start else table.all()
                out.extend(MessageRecord.from_dict(d) for d in docs or [])
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
                doomed = [message_doc_id(s) for s in range(from_seq, count)]
                if doomed:
                    self._chunk_table(cid, first).remove(doc_ids=doomed)
                break

    # usage

    async def add_usage(self, usage: UsageRecord) -> None:
        """Add to the user's and the global sums of the usage's UTC day and model."""
        await self._run(self._add_usage, usage)

    def _add_usage(self, usage: UsageRecord) -> None:
        self._add_to_day(self._layout.user_usage_file(usage.user_id), usage)
        self._add_to_day(self._layout.global_usage_part(usage.user_id), usage)

    def _add_to_day(self, path: Path, usage: UsageRecord) -> None:
        day = utc_day(usage.at)
        with self._locked(path):
            table = self._table(path, USAGE_TABLE)
            row = table.get((where("day") == day) & (where("model") == usage.model))
            if isinstance(row, Document):
                table.update(
                    {
                        "prompt_tokens": row["prompt_tokens"] + usage.prompt_tokens,
                        "completion_tokens": row["completion_tokens"] + usage.completion_tokens,
                        "cost": row["cost"] + usage.cost,
                    },
                    doc_ids=[row.doc_id],
                )
            else:
                table.insert(
                    {
                        "day": day,
                        "model": usage.model,
                        "prompt_tokens": usage.prompt_tokens,
                        "completion_tokens": usage.completion_tokens,
                        "cost": usage.cost,
                    }
                )

    async def usage_totals(self, user_id: str, since: float) -> UsageTotals:
        """The user's usage on UTC days starting at or after ``since`` (a UTC midnight)."""
        return await self._run(self._usage_totals, since, self._layout.user_usage_file(user_id))

    async def global_usage_totals(self, since: float) -> UsageTotals:
        """Everyone's usage on UTC days starting at or after ``since`` (a UTC midnight)."""
        paths = [self._layout.global_usage_file, *self._layout.global_usage_parts]
        return await self._run(self._usage_totals, since, *paths)

    def _usage_totals(self, since: float, *paths: Path) -> UsageTotals:
        docs: list[dict[str, Any]] = []
        for path in paths:
            with self._locked(path):
                docs.extend(dict(d) for d in self._table(path, USAGE_TABLE).all())
        return _totals(docs, since)

    async def move_usage(self, from_user: str, to_user: str) -> None:
        """Add one user's daily sums to another's and delete them (the global sums stay as they are)."""
        if from_user != to_user:
            await self._run(self._move_usage, from_user, to_user)

    def _move_usage(self, from_user: str, to_user: str) -> None:
        src = self._layout.user_usage_file(from_user)
        dst = self._layout.user_usage_file(to_user)
        assert self._locks is not None
        with self._locks.hold(self._layout.lock_key(src), self._layout.lock_key(dst)):
            rows = [dict(d) for d in self._table(src, USAGE_TABLE).all()]
            if not rows:
                return
            # Added before the source goes: a crash between over-counts, never under.
            table = self._table(dst, USAGE_TABLE)
            current = {(d["day"], d["model"]): d for d in table.all() if isinstance(d, Document)}
            for row in rows:
                old = current.get((row["day"], row["model"]))
                if old is None:
                    table.insert(row)
                else:
                    table.update(
                        {n: old[n] + row[n] for n in ("prompt_tokens", "completion_tokens", "cost")},
                        doc_ids=[old.doc_id],
                    )
            self._forget(src)

    # meta

    async def get_meta(self, key: str) -> Any:
        return await self._run(self._get_meta, key)

    def _get_meta(self, key: str) -> Any:
        with self._locked(self._layout.meta_file):
            return self._get_meta_unlocked(key)

    def _get_meta_unlocked(self, key: str) -> Any:
        doc = self._table(self._layout.meta_file, META_TABLE).get(where("key") == key)
        return copy.deepcopy(doc["value"]) if isinstance(doc, dict) else None

    async def set_meta(self, key: str, value: Any) -> None:
        """Set a JSON-compatible value; ``None`` deletes the key."""
        await self._run(self._set_meta, key, value)

    async def update_meta(self, key: str, change: Callable[[Any], Any]) -> Any:
        """Replace a value with ``change(old)`` under the meta file's cross-process lock."""
        return await self._run(self._update_meta, key, change)

    def _update_meta(self, key: str, change: Callable[[Any], Any]) -> Any:
        with self._locked(self._layout.meta_file):
            value = change(self._get_meta_unlocked(key))
            self._set_meta_unlocked(key, value)
        return copy.deepcopy(value)

    def _set_meta(self, key: str, value: Any) -> None:
        with self._locked(self._layout.meta_file):
            self._set_meta_unlocked(key, value)

    def _set_meta_unlocked(self, key: str, value: Any) -> None:
        table = self._table(self._layout.meta_file, META_TABLE)
        if value is None:
            if table.contains(where("key") == key):
                table.remove(where("key") == key)
        else:
            table.upsert({"key": key, "value": copy.deepcopy(value)}, where("key") == key)

    # operator tasks

    @contextmanager
    def _everything_locked(self) -> Iterator[None]:
        """Every lock of the store, in the order ``open`` takes them: a moment between operations."""
        assert self._locks is not None
        # One key per stripe (stripe_of reads the first four hex digits).
        keys = [f"{i:04x}" for i in range(LOCK_STRIPES)]
        with self._locks.hold_global(), self._locks.hold(*keys):
            yield

    def _data_files(self, root: Path) -> Iterator[Path]:
        """The store's files under ``root``, relative to it (no locks, no temporary files)."""
        for folder, dirs, files in os.walk(root):
            if Path(folder) == root and self._layout.locks_dir.name in dirs:
                dirs.remove(self._layout.locks_dir.name)
            for name in files:
                if not (name.startswith(".") and name.endswith(TEMP_SUFFIX)):
                    yield (Path(folder) / name).relative_to(root)

    async def backup(self, dest: Path) -> None:
        """Copy every file to the new folder ``dest`` while holding all the store's locks.

        Writers in every process wait for the copy, so it is one consistent moment of the store:
        everything written before the backup began, and no half of any later operation.
        """
        await self._run(self._backup, Path(dest))

    def _backup(self, dest: Path) -> None:
        if dest.exists() and any(dest.iterdir()):
            raise StoreError(f"the backup folder {dest} is not empty")
        # Into a temporary sibling first, renamed when complete: a backup folder is always whole.
        tmp = dest.with_name(f".{dest.name}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with self._everything_locked():
            for rel in self._data_files(self._layout.root):
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self._layout.root / rel, target)
                with open(target, "rb+") as f:
                    os.fsync(f.fileno())
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)

    async def restore(self, src: Path) -> None:
        """Replace the whole store with a backup folder's files, holding all the store's locks."""
        await self._run(self._restore, Path(src))

    def _restore(self, src: Path) -> None:
        if not (src / self._layout.schema_file.name).is_file():
            raise StoreError(f"{src} is not a Ferry backup (it has no {self._layout.schema_file.name})")
        root = self._layout.root
        with self._everything_locked():
            for entry in list(root.iterdir()):
                if entry == self._layout.locks_dir:
                    continue
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            for rel in self._data_files(src):
                raw = read_bytes(src / rel)
                if raw is not None:
                    self._ops.atomic_write(root / rel, raw)
            self._cache.clear()
            # A backup of an older Ferry is brought up to date like any store at open.
            self._migrate()
