"""An in-memory store: the reference semantics of the contract, and a fast store for tests."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.store.base import (
    ConversationRecord,
    IntakeRecord,
    MessageRecord,
    UsageRecord,
    UsageTotals,
    UserRecord,
    advance,
    stale_intake,
)

BACKUP_FILE = "memory-store.json"


def sum_usage(records: list[UsageRecord]) -> UsageTotals:
    """Add up usage records into totals with a per-model breakdown."""
    by_model: dict[str, tuple[int, int, float]] = {}
    p = c = 0
    cost = 0.0
    for r in records:
        p += r.prompt_tokens
        c += r.completion_tokens
        cost += r.cost
        mp, mc, mcost = by_model.get(r.model, (0, 0, 0.0))
        by_model[r.model] = (mp + r.prompt_tokens, mc + r.completion_tokens, mcost + r.cost)
    return UsageTotals(prompt_tokens=p, completion_tokens=c, cost=cost, by_model=by_model)


def _write_backup(dest: Path, text: str) -> None:
    dest.mkdir(parents=True, exist_ok=False)
    (dest / BACKUP_FILE).write_text(text, encoding="utf-8")


def _read_backup(src: Path) -> str:
    return (src / BACKUP_FILE).read_text(encoding="utf-8")


class MemoryStore:
    """Keeps everything in dictionaries; lost when the process ends."""

    READS_ON_LOOP = True
    """Its reads are dictionary look-ups on the event loop (core/readahead.py)."""

    def __init__(self) -> None:
        self._users: dict[str, UserRecord] = {}
        self._identities: dict[str, str] = {}
        self._convs: dict[str, ConversationRecord] = {}
        self._messages: dict[str, list[MessageRecord]] = {}
        self._usage: list[UsageRecord] = []
        self._meta: dict[str, Any] = {}
        self._intake: dict[str, dict[str, IntakeRecord]] = {}  # chat -> key -> record, in line order

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def get_user(self, user_id: str) -> UserRecord | None:
        return self._users.get(user_id)

    async def find_user(self, identity: str) -> UserRecord | None:
        uid = self._identities.get(identity)
        return self._users.get(uid) if uid else None

    async def put_user(self, user: UserRecord) -> None:
        old = self._users.get(user.id)
        if old:
            for ident in old.identities:
                if self._identities.get(ident) == user.id:
                    del self._identities[ident]
        self._users[user.id] = user
        for ident in user.identities:
            self._identities[ident] = user.id

    async def delete_user(self, user_id: str) -> None:
        user = self._users.pop(user_id, None)
        if user:
            for ident in user.identities:
                if self._identities.get(ident) == user_id:  # not one since moved to another user
                    del self._identities[ident]
        scope = f"user:{user_id}"
        for cid in [c.id for c in self._convs.values() if c.scope == scope]:
            del self._convs[cid]
            self._messages.pop(cid, None)
        self._usage = [u for u in self._usage if u.user_id != user_id]

    async def list_users(self) -> list[UserRecord]:
        return sorted(self._users.values(), key=lambda u: u.created_at)

    async def put_conversation(self, conv: ConversationRecord) -> None:
        self._convs[conv.id] = conv
        self._messages.setdefault(conv.id, [])

    async def get_conversation(self, conversation_id: str) -> ConversationRecord | None:
        return self._convs.get(conversation_id)

    async def list_conversations(self, scope: str, limit: int = 20) -> list[ConversationRecord]:
        convs = [c for c in self._convs.values() if c.scope == scope]
        convs.sort(key=lambda c: c.updated_at, reverse=True)
        return convs[:limit]

    async def find_conversation_by_source(self, scope: str, source: str) -> ConversationRecord | None:
        for c in self._convs.values():
            if c.scope == scope and c.source == source:
                return c
        return None

    async def move_conversations(self, from_scope: str, to_scope: str) -> int:
        moved = 0
        for c in list(self._convs.values()):
            if c.scope == from_scope:
                self._convs[c.id] = dataclasses.replace(c, scope=to_scope)
                moved += 1
        return moved

    async def append_messages(self, messages: list[MessageRecord]) -> list[MessageRecord]:
        if not messages:
            return []
        cid = messages[0].conversation_id
        stored = self._messages.setdefault(cid, [])
        out = []
        for m in messages:
            rec = dataclasses.replace(m, seq=len(stored))
            stored.append(rec)
            out.append(rec)
        conv = self._convs.get(cid)
        if conv:
            self._convs[cid] = dataclasses.replace(
                conv, updated_at=max(conv.updated_at, out[-1].created_at), message_count=len(stored)
            )
        return out

    async def update_message(self, message: MessageRecord) -> None:
        stored = self._messages.get(message.conversation_id, [])
        if 0 <= message.seq < len(stored):
            stored[message.seq] = message

    async def get_messages(self, conversation_id: str, last: int | None = None) -> list[MessageRecord]:
        stored = self._messages.get(conversation_id, [])
        return list(stored[-last:] if last else stored)

    async def truncate_messages(self, conversation_id: str, from_seq: int) -> None:
        stored = self._messages.get(conversation_id)
        if stored is not None:
            del stored[from_seq:]
            conv = self._convs.get(conversation_id)
            if conv:
                self._convs[conversation_id] = dataclasses.replace(conv, message_count=len(stored))

    async def add_usage(self, usage: UsageRecord) -> None:
        self._usage.append(usage)

    async def usage_totals(self, user_id: str, since: float) -> UsageTotals:
        return sum_usage([u for u in self._usage if u.user_id == user_id and u.at >= since])

    async def global_usage_totals(self, since: float) -> UsageTotals:
        return sum_usage([u for u in self._usage if u.at >= since])

    async def get_meta(self, key: str) -> Any:
        return self._meta.get(key)

    async def set_meta(self, key: str, value: Any) -> None:
        if value is None:
            self._meta.pop(key, None)
        else:
            self._meta[key] = value

    async def update_meta(self, key: str, change: Callable[[Any], Any]) -> Any:
        value = change(copy.deepcopy(self._meta.get(key)))
        await self.set_meta(key, copy.deepcopy(value))
        return value

    async def move_usage(self, from_user: str, to_user: str) -> None:
        self._usage = [
            dataclasses.replace(u, user_id=to_user) if u.user_id == from_user else u for u in self._usage
        ]

    async def record(self, rec: IntakeRecord) -> IntakeRecord | None:
        line = self._intake.setdefault(rec.chat, {})
        if rec.key in line:
            return None
        newest = max((r.seq for r in line.values()), default=-1)
        stored = dataclasses.replace(rec, seq=newest + 1)
        for key in stale_intake(list(line.values()), rec.received_at):  # no messenger sends these again
            del line[key]
        line[rec.key] = stored
        return stored

    async def unfinished(self, platform: str) -> list[IntakeRecord]:
        lines = [
            sorted((r for r in line.values() if r.status != "delivered"), key=lambda r: r.seq)
            for chat, line in self._intake.items()
            if chat.partition(":")[0] == platform
        ]
        lines = [line for line in lines if line]
        return [r for line in sorted(lines, key=lambda line: line[0].received_at) for r in line]

    async def mark_answered(self, chat: str, key: str, answer: list[dict[str, Any]], ref: str | None = None) -> None:
        self._mark(chat, key, lambda r: advance(r, "answered", answer=copy.deepcopy(answer), ref=ref))

    async def mark_shown(self, chat: str, key: str, ref: str) -> None:
        self._mark(chat, key, lambda r: advance(r, "received", ref=ref))

    async def mark_delivered(self, chat: str, key: str, ref: str | None) -> None:
        self._mark(chat, key, lambda r: advance(r, "delivered", ref=ref))

    def _mark(self, chat: str, key: str, change: Callable[[IntakeRecord], IntakeRecord]) -> None:
        line = self._intake.get(chat, {})
        if key in line:
            line[key] = change(line[key])

    async def backup(self, dest: Path) -> None:
        """Write everything as one JSON file in the new folder ``dest``."""
        data = {
            "users": [u.to_dict() for u in self._users.values()],
            "conversations": [c.to_dict() for c in self._convs.values()],
            "messages": [m.to_dict() for ms in self._messages.values() for m in ms],
            "usage": [dataclasses.asdict(u) for u in self._usage],
            "meta": self._meta,
        }
        _write_backup(dest, json.dumps(data, ensure_ascii=False))

    async def restore(self, src: Path) -> None:
        data = json.loads(_read_backup(src))
        self._users, self._identities, self._convs, self._messages = {}, {}, {}, {}
        for user in data["users"]:
            await self.put_user(UserRecord.from_dict(user))
        for conv in data["conversations"]:
            await self.put_conversation(ConversationRecord.from_dict(conv))
        for m in sorted(data["messages"], key=lambda m: m["seq"]):
            self._messages.setdefault(m["conversation_id"], []).append(MessageRecord.from_dict(m))
        self._usage = [UsageRecord(**u) for u in data["usage"]]
        self._meta = dict(data["meta"])
