"""The user's own data: /export hands it over, /forget deletes it.

The export is a JSON document with a stable, versioned schema (``docs/export.md``,
``config/export-schema.json``) plus the same conversations as readable Markdown. It holds the
user's own conversations (scope ``user:<id>``, from every linked messenger), their settings and
their usage; group conversations belong to the group and are not part of it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from core import outbox
from core.access import HAS_ADMIN_KEY
from core.accounts import forget_link_state
from core.i18n import Texts
from core.registry import Registry
from core.request import Request
from core.services import Services
from core.store.base import ConversationRecord, MessageRecord, Store, UserRecord
from core.types import Button, FileReply, Notice, Reaction, ReplyEvent

log = logging.getLogger(__name__)

EXPORT_FORMAT = "ferry-export"
EXPORT_VERSION = 1
ALL = 2**31  # "every conversation" for Store.list_conversations


def iso(at: float) -> str:
    """An epoch time as ISO 8601 UTC with a ``Z``, to the second."""
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _message_json(m: MessageRecord) -> dict[str, Any]:
    return {
        "seq": m.seq,
        "role": m.role,
        "content": m.content,
        "created_at": iso(m.created_at),
        "status": m.status,
        "author": m.author,
        "model": m.model,
        "prompt_tokens": m.prompt_tokens,
        "completion_tokens": m.completion_tokens,
        "cost_usd": m.cost,
    }


def _conversation_json(c: ConversationRecord, messages: list[MessageRecord]) -> dict[str, Any]:
    return {
        "id": c.id,
        "title": c.title,
        "model": c.model,
        "source": c.source,
        "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
        "messages": [_message_json(m) for m in messages],
    }


async def export_document(store: Store, user: UserRecord, now: float) -> dict[str, Any]:
    """Everything the user may take away, as the versioned export document."""
    convs = sorted(
        (c for c in await store.list_conversations(f"user:{user.id}", ALL) if c.message_count),
        key=lambda c: (c.created_at, c.id),
    )
    totals = await store.usage_totals(user.id, 0)
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at": iso(now),
        "user": {
            "id": user.id,
            "display_name": user.display_name,
            "identities": list(user.identities),
            "language": user.lang,
            "model": user.model,
            "instructions": user.instructions,
            "created_at": iso(user.created_at),
        },
        "usage": {
            "prompt_tokens": totals.prompt_tokens,
            "completion_tokens": totals.completion_tokens,
            "cost_usd": totals.cost,
            "by_model": [
                {"model": name, "prompt_tokens": p, "completion_tokens": c, "cost_usd": cost}
                for name, (p, c, cost) in sorted(totals.by_model.items())
            ],
        },
        "conversations": [_conversation_json(c, await store.get_messages(c.id)) for c in convs],
    }


def export_markdown(doc: dict[str, Any], texts: Texts, lang: str) -> str:
    """The export document as Markdown a person can read."""
    user = doc["user"]
    name = user["display_name"] or (user["identities"][0] if user["identities"] else user["id"])
    out = [
        f"# {texts.get(lang, 'export.md_title', name=name)}",
        "",
        texts.get(
            lang, "export.md_intro", date=dt.datetime.fromisoformat(doc["exported_at"]), count=len(doc["conversations"])
        ),
    ]
    for conv in doc["conversations"]:
        title = conv["title"] or texts.get(lang, "chat.untitled")
        started = texts.get(lang, "export.md_started", date=dt.datetime.fromisoformat(conv["created_at"]))
        out += ["", f"## {title}", "", f"_{started}_"]
        for m in conv["messages"]:
            if m["role"] == "user":
                who = texts.get(lang, "export.md_you")
            elif m["role"] == "assistant":
                who = texts.get(lang, "export.md_assistant", model=m["model"] or "")
            else:
                who = m["role"]
            if m["status"] in ("interrupted", "cancelled"):
                who += f" ({texts.get(lang, 'export.md_cut_off')})"
            out += ["", f"**{who}** · {m['created_at']}", "", m["content"]]
    return "\n".join(out) + "\n"


async def export_files(store: Store, user: UserRecord, texts: Texts, lang: str, now: float) -> list[FileReply]:
    """The JSON and the Markdown file of the user's export."""
    doc = await export_document(store, user, now)
    stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y%m%d-%H%M%S")
    data = json.dumps(doc, ensure_ascii=False, indent=2).encode("utf-8")
    caption = texts.get(lang, "export.caption", count=len(doc["conversations"]))
    return [
        FileReply(f"ferry-export-{stamp}.json", data, "application/json", caption),
        FileReply(f"ferry-export-{stamp}.md", export_markdown(doc, texts, lang).encode("utf-8"), "text/markdown"),
    ]


async def forget_user(store: Store, user: UserRecord) -> None:
    """Delete everything stored about the user, on every linked identity."""
    await forget_link_state(store, user)
    await outbox.forget(store, user.identities, (user.display_name or "", user.id))
    await store.delete_user(user.id)
    if user.is_admin and not any(u.is_admin for u in await store.list_users()):
        # Nobody in the store can administer the bot any more: the next start offers a claim code.
        await store.set_meta(HAS_ADMIN_KEY, None)
    log.info("forgot user %s at their request", user.id)


class UserData:
    """The /export and /forget commands on one assistant."""

    def __init__(self, services: Services) -> None:
        self._s = services

    def _notice(self, lang: str, key: str, **values: Any) -> Notice:
        return Notice(self._s.texts.get(lang, key, **values))

    async def export(self, request: Request, args: str) -> AsyncIterator[ReplyEvent]:
        if request.msg.chat.is_group:
            yield self._notice(request.lang, "export.private_only")
            return
        user = await self._s.store.get_user(request.user.id) or request.user
        yield Reaction("👀")  # gathering every conversation takes a moment
        for file in await export_files(self._s.store, user, self._s.texts, request.lang, self._s.clock()):
            yield file

    async def forget(self, request: Request, args: str) -> AsyncIterator[ReplyEvent]:
        if request.msg.chat.is_group:
            yield self._notice(request.lang, "forget.private_only")
            return
        t = self._s.texts
        yield Notice(
            t.get(request.lang, "forget.confirm"),
            buttons=(
                (Button(t.get(request.lang, "forget.yes_button"), "forget:yes"),),
                (Button(t.get(request.lang, "forget.no_button"), "forget:no"),),
            ),
        )

    async def answer(self, request: Request, value: str) -> AsyncIterator[ReplyEvent]:
        """The answer to /forget's question."""
        if value != "yes" or request.msg.chat.is_group:
            yield self._notice(request.lang, "forget.kept")
            return
        user = await self._s.store.get_user(request.user.id) or request.user
        await forget_user(self._s.store, user)
        yield self._notice(request.lang, "forget.done")


def register(registry: Registry, services: Services) -> UserData:
    """Plug /export, /forget and its confirmation buttons in."""
    data = UserData(services)
    registry.add_command("export", data.export)
    registry.add_command("forget", data.forget)
    registry.add_callback("forget", data.answer)
    return data
