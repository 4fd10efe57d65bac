"""The TinyDB store's users and identities."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tinydb import where

from core.store.base import (
    UserRecord,
)
from core.store.tinydb_conversations import ConversationFiles, touches_file
from core.store.tinydb_files import (
    read_bytes,
)
from core.store.tinydb_layout import (
    IDENTITY_TABLE,
    SCOPE_TABLE,
    SINGLE_DOC_ID,
    USER_TABLE,
    identity_entry,
)
from core.store.tinydb_usage import UsageFiles


def _user_from_doc(doc: dict[str, Any]) -> UserRecord:
    # Documents share nested objects with the file cache; the caller gets its own copy.
    return UserRecord.from_dict({**doc, "extra": copy.deepcopy(doc.get("extra", {}))})


def _user_scope(user_id: str) -> str:
    return f"user:{user_id}"


class UserFiles(ConversationFiles, UsageFiles):
    """Users and their identities; deleting a user removes its conversations and usage too."""

    async def get_user(self, user_id: str) -> UserRecord | None:
        return await self._read(self._get_user, user_id)

    def _get_user(self, user_id: str) -> UserRecord | None:
        path = self._layout.user_file(user_id)
        with self._locked(path):
            doc = self._single(path, USER_TABLE)
        return _user_from_doc(doc) if doc else None

    async def find_user(self, identity: str) -> UserRecord | None:
        return await self._read(self._find_user, identity)

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
                    if any(i in current for i in idents):  # removing none would still replace the file
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
            self._forget(touches_file(scope_file))
        if user:
            self._drop_identities(list(user.identities), user_id)
        self._delete_usage(user_id)
        # The record goes last, so an interrupted delete can simply be run again.
        path = self._layout.user_file(user_id)
        with self._locked(path):
            self._forget(path)

    async def list_users(self) -> list[UserRecord]:
        """Every user, oldest first (an admin operation: it reads every user file)."""
        return await self._scan(self._list_users)

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
