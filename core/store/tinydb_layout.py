"""Where the TinyDB store keeps each record, and the exact JSON each file holds.

Every file is one TinyDB database (``{table: {doc_id: document}}``), sharded by a hash of its key
so that no folder and no hot file grows with the number of users or conversations::

    schema.json                               schema version and applied migrations
    meta.json                                 small settings (table "meta": key, value)
    locks/NNN.lock, locks/global.lock         cross-process lock stripes
    users/<h:2>/<h>.json                      one user (table "user", doc 1)
    identities/<h:2>/<h2:4>.json              identity -> user id, 65,536 shards
    scopes/<h:2>/<h>.json                     a scope's conversations: id, updated_at, source
    scopes/<h:2>/<h>.jsonl                    newer updated_at of its conversations (a journal)
    conversations/<h:2>/<h>/conversation.json the conversation record (table "conversation", doc 1)
    conversations/<h:2>/<h>/m<seq:010>.jsonl  messages from that seq on (a chunk, see chunk_is_full; a journal)
    usage/users/<h:2>/<h>.jsonl               a user's per-UTC-day, per-model sums (a journal)
    usage/global/<h:1>.jsonl                  everyone's per-UTC-day, per-model sums, in 16 parts (journals)
    usage/global.json                         the same, as stores before the parts kept it (read only)
    intake/<platform>/<h:2>/<h>.jsonl         a chat's received messages (a journal, see tinydb_intake)

A ``.json`` file is one TinyDB database, replaced whole on every change. A ``.jsonl`` file is a
journal (``tinydb_journal``): JSON lines, appended to, compacted by replacing it whole. A chunk's
lines are messages (a seq's last line counts: an updated message is appended again); usage lines
are changes to a day's and model's sums (the sums are the lines added up); intake lines are a
record's whole new state (a key's last line counts); a scope's lines are ``{id, updated_at}``
(the newest counts, folded into the index every ``TOUCHES_KEPT``). Stores of schema 1 kept
messages, usage and intake in TinyDB files; migration ``0002_journals`` rewrites them as journals.

``<h>`` is a SHA-256 prefix of the key, so file names never carry user identifiers. The bench's
bulk loader writes this layout directly with these functions, so it stays faithful.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.store.base import ConversationRecord, MessageRecord, UserRecord
from core.store.tinydb_journal import JOURNAL_SUFFIX, lines_bytes

# A chunk takes appends until it holds CHUNK_SIZE messages or CHUNK_BYTES of JSON lines, whichever
# comes first; a whole batch always lands in one chunk. A chunk is only rewritten whole when
# messages are truncated (/retry), and read whole for the last messages: kept small.
CHUNK_SIZE = 128
CHUNK_BYTES = 32 * 1024
USER_TABLE = "user"
IDENTITY_TABLE = "identities"
SCOPE_TABLE = "conversations"
CONVERSATION_TABLE = "conversation"
MESSAGE_TABLE = "messages"
USAGE_TABLE = "days"
META_TABLE = "meta"
SCHEMA_TABLE = "schema"
SINGLE_DOC_ID = 1
CHUNK_PREFIX = "m"
# Everyone's usage sums are split by the user's hash, so concurrent answers rarely share a file.
GLOBAL_USAGE_PARTS = 16
DAY_SECONDS = 86400


@functools.lru_cache(maxsize=65536)
def key_hash(key: str) -> str:
    """The 128-bit hex name of a key's file."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def utc_day(at: float) -> int:
    """The UTC midnight (epoch seconds) of the day containing ``at``."""
    return int(at // DAY_SECONDS) * DAY_SECONDS


class _Below:
    """A file or folder at a fixed place below the store's root, read as an attribute of a :class:`Layout`."""

    def __init__(self, *parts: str) -> None:
        self._parts = parts

    def __get__(self, layout: Layout, owner: type[Layout] | None = None) -> Path:
        return _below(layout.root, self._parts)


@dataclass(frozen=True)
class Layout:
    """Paths of every file of a store rooted at ``root``."""

    root: Path

    schema_file = _Below("schema.json")
    meta_file = _Below("meta.json")
    locks_dir = _Below("locks")
    users_dir = _Below("users")
    identities_dir = _Below("identities")
    scopes_dir = _Below("scopes")
    conversations_dir = _Below("conversations")  # as in _conversation_dir
    usage_dir = _Below("usage")
    global_usage_file = _Below("usage", "global.json")
    """Everyone's sums as older stores kept them in one file; still counted, no longer written."""

    def global_usage_part(self, user_id: str) -> Path:
        """The part of everyone's sums a user's answers are added to."""
        return _global_parts(self.root)[int(key_hash(user_id)[0], 16) % GLOBAL_USAGE_PARTS]

    @property
    def global_usage_parts(self) -> list[Path]:
        return list(_global_parts(self.root))

    def user_file(self, user_id: str) -> Path:
        return _sharded(self.root, "users", user_id, ".json")

    def identity_file(self, identity: str) -> Path:
        return _identity_file(self.root, identity)

    def scope_file(self, scope: str) -> Path:
        return _sharded(self.root, "scopes", scope, ".json")

    def conversation_dir(self, conversation_id: str) -> Path:
        return _conversation_dir(self.root, conversation_id)

    def conversation_file(self, conversation_id: str) -> Path:
        return _in_conversation(self.root, conversation_id, "conversation.json")

    def chunk_file(self, conversation_id: str, first_seq: int) -> Path:
        return _in_conversation(self.root, conversation_id, f"{CHUNK_PREFIX}{first_seq:010d}{JOURNAL_SUFFIX}")

    def user_usage_file(self, user_id: str) -> Path:
        return _sharded(self.root, "usage/users", user_id, JOURNAL_SUFFIX)

    def lock_key(self, path: Path) -> str:
        """The lock-stripe key of a file (a conversation's folder is locked as one unit)."""
        return _lock_key(self.root, path)


# Path arithmetic is a visible part of a turn's CPU time; these are pure, so they are memoised.


@functools.lru_cache(maxsize=256)
def _below(root: Path, parts: tuple[str, ...]) -> Path:
    return root.joinpath(*parts)


@functools.lru_cache(maxsize=16384)
def _conversation_dir(root: Path, conversation_id: str) -> Path:
    h = key_hash(conversation_id)
    return root / "conversations" / h[:2] / h


@functools.lru_cache(maxsize=16384)
def _in_conversation(root: Path, conversation_id: str, name: str) -> Path:
    return _conversation_dir(root, conversation_id) / name


@functools.lru_cache(maxsize=16384)
def _sharded(root: Path, folder: str, key: str, suffix: str) -> Path:
    """``folder/<h:2>/<h><suffix>`` (a turn asks for each of its files several times)."""
    h = key_hash(key)
    return root.joinpath(*folder.split("/"), h[:2], f"{h}{suffix}")


@functools.lru_cache(maxsize=16384)
def _identity_file(root: Path, identity: str) -> Path:
    h = key_hash(identity)
    return root / "identities" / h[:2] / f"{h[2:4]}.json"


@functools.lru_cache(maxsize=16)
def _global_parts(root: Path) -> tuple[Path, ...]:
    return tuple(root / "usage" / "global" / f"{i:x}{JOURNAL_SUFFIX}" for i in range(GLOBAL_USAGE_PARTS))


@functools.lru_cache(maxsize=16384)
def _lock_key(root: Path, path: Path) -> str:
    return key_hash(os.path.relpath(path, root))


def chunk_is_full(messages: int, size: int, max_messages: int = CHUNK_SIZE, max_bytes: int = CHUNK_BYTES) -> bool:
    """Whether the next append starts a new chunk after one of ``messages`` records, ``size`` bytes."""
    return messages >= max_messages or size >= max_bytes


def split_chunks(messages: Sequence[MessageRecord]) -> list[list[MessageRecord]]:
    """Cut messages (each appended alone) into chunks exactly as the store would."""
    chunks: list[list[MessageRecord]] = []
    for m in messages:
        if not chunks or chunk_is_full(len(chunks[-1]), len(chunk_lines(chunks[-1]))):
            chunks.append([])
        chunks[-1].append(m)
    return chunks


def chunk_first_seq(name: str) -> int | None:
    """The first seq of a chunk file name, or None when the name is not a chunk."""
    if name.startswith(CHUNK_PREFIX) and name.endswith(JOURNAL_SUFFIX):
        digits = name[len(CHUNK_PREFIX) : -len(JOURNAL_SUFFIX)]
        if digits.isdigit():
            return int(digits)
    return None


# The file contents, as the bulk loader writes them; the store writes the same via TinyDB tables.


def user_tables(user: UserRecord) -> dict[str, Any]:
    return {USER_TABLE: {str(SINGLE_DOC_ID): user.to_dict()}}


def conversation_tables(conv: ConversationRecord) -> dict[str, Any]:
    return {CONVERSATION_TABLE: {str(SINGLE_DOC_ID): conv.to_dict()}}


def scope_entry(conv: ConversationRecord) -> dict[str, Any]:
    return {"id": conv.id, "updated_at": conv.updated_at, "source": conv.source}


def scope_tables(convs: Iterable[ConversationRecord]) -> dict[str, Any]:
    return {SCOPE_TABLE: {str(i): scope_entry(c) for i, c in enumerate(convs, start=1)}}


def identity_entry(identity: str, user_id: str) -> dict[str, Any]:
    return {"identity": identity, "user_id": user_id}


def identity_tables(entries: Iterable[tuple[str, str]]) -> dict[str, Any]:
    docs = {str(i): identity_entry(ident, uid) for i, (ident, uid) in enumerate(entries, start=1)}
    return {IDENTITY_TABLE: docs}


def chunk_lines(messages: Iterable[MessageRecord]) -> bytes:
    """A chunk's file: a line per message, as the store appends them one by one."""
    return lines_bytes(m.to_dict() for m in messages)
