"""``ferry store copy``: move a whole store between backends (TinyDB folder ⇄ PostgreSQL URL).

A copy writes through the destination's own store contract (plus an exact per-day usage setter),
so every record lands as the backend would have written it. It is resumable: users, conversations
and meta are replaced by id or key, a conversation only gets the messages it does not have yet,
and usage days are set to the source's values rather than added. A re-run after an interruption
therefore continues where the first stopped and duplicates nothing. At the end both sides are
counted and compared.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from core.store.base import Store, StoreError, UsageRecord, UserRecord
from core.store.tinydb_layout import CONVERSATION_TABLE, META_TABLE, SINGLE_DOC_ID, Layout
from core.store.tinydb_usage import day_rows

DAY_SECONDS = 86400
MESSAGE_BATCH = 100
PARALLEL = 16
COST_TOLERANCE = 1e-9
# The messengers whose received messages wait in the intake (issue 11) until answered.
INTAKE_PLATFORMS = ("telegram", "signal")

Progress = Callable[[str, int, int], None]
T = TypeVar("T")


@dataclass(frozen=True)
class UsageDay:
    """One user's sums for one UTC day and model."""

    user_id: str
    day: int
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost: float


@dataclass(frozen=True)
class Counts:
    """What a store holds, to compare both sides of a copy."""

    users: int
    conversations: int
    messages: int
    tokens: int
    meta_keys: int
    unfinished: int = 0  # received messages whose answer was not delivered yet (the intake)


@dataclass(frozen=True)
class CopyResult:
    """The counts of both sides after a copy; ``ok`` when they agree."""

    source: Counts
    destination: Counts

    @property
    def ok(self) -> bool:
        return self.source == self.destination


class Dump(Protocol):
    """What a copy reads beyond the store contract, and sets exactly."""

    async def conversation_ids(self) -> list[str]: ...
    async def usage_days(self, user_id: str) -> list[UsageDay]: ...
    async def meta_items(self) -> dict[str, Any]: ...
    async def set_usage_days(self, rows: list[UsageDay]) -> None: ...


def _docs(path: Path, table: str) -> list[dict[str, Any]]:
    # Files are replaced atomically, so a lock-free read sees a whole file.
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    docs = json.loads(raw).get(table, {})
    return [docs[k] for k in sorted(docs, key=int)]


def _conversation_files(root: Path) -> Iterator[Path]:
    yield from sorted(root.glob("*/*/conversation.json"))


class TinyDBDump:
    """Reads a TinyDB store's conversation ids, usage days and meta from its files (see its layout)."""

    def __init__(self, store: Store, root: Path) -> None:
        self._store = store
        self._layout = Layout(Path(root))
        self.root = self._layout.conversations_dir

    async def conversation_ids(self) -> list[str]:
        def ids() -> list[str]:
            found = (_tables(f).get(str(SINGLE_DOC_ID), {}).get("id") for f in _conversation_files(self.root))
            return sorted(i for i in found if i)

        return await asyncio.to_thread(ids)

    async def usage_days(self, user_id: str) -> list[UsageDay]:
        path = self._layout.user_usage_file(user_id)
        docs = await asyncio.to_thread(day_rows, path)
        return [
            UsageDay(user_id, int(d["day"]), d["model"], d["prompt_tokens"], d["completion_tokens"], d["cost"])
            for d in docs
        ]

    async def meta_items(self) -> dict[str, Any]:
        docs = await asyncio.to_thread(_docs, self._layout.meta_file, META_TABLE)
        return {d["key"]: d["value"] for d in docs}

    async def set_usage_days(self, rows: list[UsageDay]) -> None:
        """Add the difference between each row and what the store holds for that day and model.

        The contract only adds usage; the store's sums since a day minus those since the next day
        are that day's, so a re-run adds nothing.
        """
        for row in rows:
            on = (await self._store.usage_totals(row.user_id, row.day)).by_model.get(row.model, (0, 0, 0.0))
            after = (await self._store.usage_totals(row.user_id, row.day + DAY_SECONDS)).by_model.get(
                row.model, (0, 0, 0.0)
            )
            have = (on[0] - after[0], on[1] - after[1], on[2] - after[2])
            missing = (row.prompt_tokens - have[0], row.completion_tokens - have[1], row.cost - have[2])
            if missing[0] < 0 or missing[1] < 0:
                raise StoreError(f"the destination already has more usage for {row.user_id} than the source")
            if missing[0] or missing[1] or abs(missing[2]) > COST_TOLERANCE:
                await self._store.add_usage(
                    UsageRecord(row.user_id, "", row.model, missing[0], missing[1], missing[2], float(row.day))
                )


def _tables(path: Path) -> dict[str, Any]:
    try:
        tables: dict[str, Any] = json.loads(path.read_bytes()).get(CONVERSATION_TABLE, {})
    except FileNotFoundError:
        return {}
    return tables


async def count(store: Store, dump: Dump) -> Counts:
    """Count what a store holds."""
    users = await store.list_users()
    ids = await dump.conversation_ids()
    messages = 0
    for cid in ids:
        conv = await store.get_conversation(cid)
        messages += conv.message_count if conv else 0
    return Counts(
        users=len(users),
        conversations=len(ids),
        messages=messages,
        tokens=(await store.global_usage_totals(0)).tokens,
        meta_keys=len(await dump.meta_items()),
        unfinished=sum([len(await store.unfinished(p)) for p in INTAKE_PLATFORMS]),
    )


async def copy_store(
    src: Store, src_dump: Dump, dst: Store, dst_dump: Dump, progress: Progress, parallel: int = PARALLEL
) -> CopyResult:
    """Copy everything from ``src`` to ``dst``, ``parallel`` records at a time; safe to run again."""
    users = await src.list_users()
    ids = await src_dump.conversation_ids()
    meta = await src_dump.meta_items()
    total = 2 * len(users) + len(ids) + len(meta)
    done = 0

    async def put_user(user: UserRecord) -> None:
        if await dst.get_user(user.id) != user:
            await dst.put_user(user)

    async def put_usage(user: UserRecord) -> None:
        await dst_dump.set_usage_days(await src_dump.usage_days(user.id))

    async def in_groups(stage: str, items: Sequence[T], step: Callable[[T], Awaitable[None]]) -> None:
        # A few at a time: reads overlap, and writes issued together share a commit.
        nonlocal done
        for start in range(0, len(items), parallel):
            group = items[start : start + parallel]
            await asyncio.gather(*(step(item) for item in group))
            done += len(group)
            progress(stage, done, total)

    await in_groups("users", users, put_user)
    await in_groups("conversations", ids, lambda cid: _copy_conversation(src, dst, cid))
    await in_groups("usage", users, put_usage)
    for key, value in meta.items():
        if await dst.get_meta(key) != value:
            await dst.set_meta(key, value)
        done += 1
        progress("meta", done, total)
    for platform in INTAKE_PLATFORMS:
        await _copy_intake(src, dst, platform)
    return CopyResult(await count(src, src_dump), await count(dst, dst_dump))


async def _copy_conversation(src: Store, dst: Store, cid: str) -> None:
    conv = await src.get_conversation(cid)
    if conv is None:
        return
    have = await dst.get_conversation(cid)
    if have is None or (have.scope, have.title, have.model, have.created_at, have.source) != (
        conv.scope, conv.title, conv.model, conv.created_at, conv.source
    ):
        await dst.put_conversation(conv)
    stored = have.message_count if have else 0
    if stored >= conv.message_count:
        if stored > conv.message_count:
            raise StoreError(f"the destination has more messages in conversation {cid} than the source")
        return
    messages = await src.get_messages(cid)
    for start in range(stored, len(messages), MESSAGE_BATCH):
        batch = messages[start : start + MESSAGE_BATCH]
        written = await dst.append_messages(batch)
        if [m.seq for m in written] != [m.seq for m in batch]:
            raise StoreError(f"conversation {cid} changed in the destination while it was copied")


async def _copy_intake(src: Store, dst: Store, platform: str) -> None:
    """Messages received but not answered yet move too, in line order, so the bots answer them after
    the switch; a key the destination knows already is skipped (a re-run). Delivered records stay
    behind: with the bots stopped for the copy, no messenger sends those updates again."""
    for rec in await src.unfinished(platform):
        if await dst.record(rec) is None:
            continue
        if rec.ref is not None:
            await dst.mark_shown(rec.chat, rec.key, rec.ref)
        if rec.status == "answered" and rec.answer is not None:
            await dst.mark_answered(rec.chat, rec.key, rec.answer)
