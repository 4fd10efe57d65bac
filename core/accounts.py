"""One person across messengers: /link joins two identities into one user, /unlink splits one off.

``/link`` on one messenger shows a one-time code (valid ten minutes); ``/link CODE`` on the
other joins the sender's user into the user who showed the code. Conversations are scoped
``user:<id>``, so merging moves the absorbed user's conversations and usage over, keeps the
settings of the user who showed the code (taking the other's where unset), points every
identity at the kept user and deletes the absorbed user's record (not its data).

Codes and wrong tries live in store meta and change through ``Store.update_meta``, so a code is
used at most once even when the Telegram and Signal processes race, and an identity gets at most
five wrong tries an hour.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

from core.registry import Registry
from core.request import Request
from core.services import Services
from core.store.base import Store, UserRecord, UserStatus
from core.types import AdminAlert, Button, Notice, ReplyEvent

log = logging.getLogger(__name__)

CODES_KEY = "link_codes"  # {code: {"user": user id, "expires": epoch seconds}}
TRIES_KEY = "link_tries"  # {identity: [epoch seconds of each wrong try in the last hour]}
CODE_SECONDS = 600
MAX_WRONG_TRIES = 5
TRY_WINDOW_SECONDS = 3600
CODE_LENGTH = 8
# Letters and digits that cannot be mistaken for each other when copied by hand (no 0/O, 1/I).
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def show_code(code: str) -> str:
    """``ABCDEFGH`` as people read it: ``ABCD-EFGH``."""
    return f"{code[:4]}-{code[4:]}"


def normalise_code(text: str) -> str:
    return "".join(c for c in text.upper() if c.isalnum())


def _live_codes(old: Any, now: float) -> dict[str, Any]:
    return {k: v for k, v in (old or {}).items() if isinstance(v, dict) and v.get("expires", 0) > now}


async def issue_code(store: Store, user_id: str, now: float) -> str:
    """A fresh code for the user; the user's earlier code stops working, expired codes are dropped."""
    code = new_code()

    def add(old: Any) -> Any:
        codes = {k: v for k, v in _live_codes(old, now).items() if v.get("user") != user_id}
        codes[code] = {"user": user_id, "expires": now + CODE_SECONDS}
        return codes

    await store.update_meta(CODES_KEY, add)
    return code


async def take_code(store: Store, code: str, now: float) -> str | None:
    """The user id behind a live code, which is used up by this call; None when wrong or expired."""
    taken: list[str] = []

    def take(old: Any) -> Any:
        codes = _live_codes(old, now)
        entry = codes.pop(code, None)
        if entry is not None:
            taken.append(str(entry["user"]))
        return codes or None

    await store.update_meta(CODES_KEY, take)
    return taken[0] if taken else None


async def reserve_try(store: Store, identity: str, now: float) -> tuple[bool, int, float]:
    """Count a try before the code is checked (so racing tries are counted too).

    Returns whether the try may go ahead, the tries left after it, and when the oldest counted
    try stops counting.
    """
    result: list[tuple[bool, int, float]] = []

    def count(old: Any) -> Any:
        tries = {k: v for k, v in (old or {}).items() if isinstance(v, list)}
        recent = [t for t in tries.get(identity, []) if t > now - TRY_WINDOW_SECONDS]
        allowed = len(recent) < MAX_WRONG_TRIES
        if allowed:
            recent.append(now)
        tries[identity] = recent
        result.append((allowed, MAX_WRONG_TRIES - len(recent), min(recent) + TRY_WINDOW_SECONDS))
        return {k: v for k, v in tries.items() if v} or None

    await store.update_meta(TRIES_KEY, count)
    return result[0]


async def release_try(store: Store, identity: str, at: float) -> None:
    """Uncount a try that turned out right: only wrong tries are limited."""

    def uncount(old: Any) -> Any:
        tries = dict(old or {})
        recent = list(tries.get(identity, []))
        if at in recent:
            recent.remove(at)
        tries[identity] = recent
        return {k: v for k, v in tries.items() if v} or None

    await store.update_meta(TRIES_KEY, uncount)


async def forget_link_state(store: Store, user: UserRecord) -> None:
    """Remove the user's codes and their identities' tries from the store (for /forget)."""
    await store.update_meta(
        CODES_KEY, lambda old: {k: v for k, v in (old or {}).items() if v.get("user") != user.id} or None
    )
    idents = set(user.identities)
    await store.update_meta(TRIES_KEY, lambda old: {k: v for k, v in (old or {}).items() if k not in idents} or None)


def _merged_status(a: UserStatus, b: UserStatus) -> UserStatus:
    if "blocked" in (a, b):
        return "blocked"
    return "approved" if "approved" in (a, b) else a


async def merge_users(store: Store, keeper: UserRecord, absorbed: UserRecord) -> UserRecord:
    """Join ``absorbed`` into ``keeper``: conversations, usage, identities; settings of ``keeper`` first.

    The data moves before the identities do, so an interrupted merge loses nothing: every
    conversation stays reachable from the identity that will end up with it.
    """
    if keeper.id == absorbed.id:
        return keeper
    moved = await store.move_conversations(f"user:{absorbed.id}", f"user:{keeper.id}")
    await store.move_usage(absorbed.id, keeper.id)
    merged = dataclasses.replace(
        keeper,
        identities=tuple(dict.fromkeys((*keeper.identities, *absorbed.identities))),
        display_name=keeper.display_name or absorbed.display_name,
        status=_merged_status(keeper.status, absorbed.status),
        is_admin=keeper.is_admin or absorbed.is_admin,
        lang=keeper.lang or absorbed.lang,
        model=keeper.model or absorbed.model,
        instructions=keeper.instructions or absorbed.instructions,
        created_at=min(keeper.created_at, absorbed.created_at) if absorbed.created_at else keeper.created_at,
        extra={**absorbed.extra, **keeper.extra},
    )
    await store.put_user(merged)
    # Emptied first, so deleting the record cannot take the identities that now belong to the keeper.
    await store.put_user(dataclasses.replace(absorbed, identities=()))
    await store.delete_user(absorbed.id)
    log.info("linked user %s into %s (%d conversations moved)", absorbed.id, keeper.id, moved)
    return merged


async def split_identity(store: Store, user: UserRecord, identity: str, now: float) -> UserRecord:
    """Give ``identity`` a user of its own with the same settings; the history stays with ``user``."""
    alone = UserRecord(
        id=uuid.uuid4().hex[:12],
        identities=(identity,),
        display_name=user.display_name,
        status=user.status,
        lang=user.lang,
        model=user.model,
        instructions=user.instructions,
        created_at=now,
    )
    # The new user takes the identity first; then the old one lets go of it.
    await store.put_user(alone)
    await store.put_user(dataclasses.replace(user, identities=tuple(i for i in user.identities if i != identity)))
    log.info("unlinked %s from user %s into user %s", identity, user.id, alone.id)
    return alone


class Accounts:
    """The /link and /unlink commands on one assistant."""

    def __init__(self, services: Services) -> None:
        self._s = services

    def _notice(self, lang: str, key: str, **values: Any) -> Notice:
        return Notice(self._s.texts.get(lang, key, **values), is_error=key.endswith(("wrong", "too_many")))

    async def link(self, request: Request, args: str) -> AsyncIterator[ReplyEvent]:
        if request.msg.chat.is_group:
            yield self._notice(request.lang, "link.private_only")
            return
        store = self._s.store
        now = self._s.clock()
        if not args.strip():
            code = await issue_code(store, request.user.id, now)
            yield self._notice(request.lang, "link.code", code=show_code(code), minutes=CODE_SECONDS // 60)
            return

        identity = str(request.msg.sender)
        allowed, left, free_at = await reserve_try(store, identity, now)
        if not allowed:
            minutes = max(1, int((free_at - now + 59) // 60))
            yield self._notice(request.lang, "link.too_many", minutes=minutes, count=minutes)
            return
        code = normalise_code(args)
        if code in _live_codes(await store.get_meta(CODES_KEY), now) and await self._is_own(code, request.user.id):
            # Not used up: it is still good on the other messenger.
            await release_try(store, identity, now)
            yield self._notice(request.lang, "link.own_code")
            return
        owner_id = await take_code(store, code, now) if len(code) == CODE_LENGTH else None
        owner = await store.get_user(owner_id) if owner_id else None
        if owner is None:
            yield self._notice(request.lang, "link.wrong", tries=left)
            return
        await release_try(store, identity, now)
        user = await store.get_user(request.user.id) or request.user
        merged = await merge_users(store, owner, user)
        yield self._notice(request.lang, "link.done", identities=", ".join(merged.identities))
        others = tuple(i for i in owner.identities if i not in user.identities)
        if others:
            owner_lang = self._s.texts.pick_language(merged.lang, self._s.settings.default_lang)
            yield AdminAlert(to=others, text=self._s.texts.get(owner_lang, "link.linked_notice", identity=identity))

    async def _is_own(self, code: str, user_id: str) -> bool:
        entry = (await self._s.store.get_meta(CODES_KEY) or {}).get(code)
        return isinstance(entry, dict) and entry.get("user") == user_id

    async def unlink(self, request: Request, args: str) -> AsyncIterator[ReplyEvent]:
        user = await self._s.store.get_user(request.user.id) or request.user
        wanted = args.strip()
        if len(user.identities) < 2:
            yield self._notice(request.lang, "link.unlink_single")
            return
        if not wanted:
            buttons = tuple((Button(ident, f"unlink:{ident}"),) for ident in user.identities)
            yield Notice(self._s.texts.get(request.lang, "link.unlink_choose"), buttons=buttons)
            return
        if wanted not in user.identities:
            known = ", ".join(user.identities)
            yield self._notice(request.lang, "link.unlink_unknown", identity=wanted, identities=known)
            return
        await split_identity(self._s.store, user, wanted, self._s.clock())
        yield self._notice(request.lang, "link.unlinked", identity=wanted)


def _proves_access(request: Request) -> bool:
    """/link with a code may be sent before approval: the code proves an account with access."""
    return request.command is not None and bool(request.command.args) and request.user.status != "blocked"


def register(registry: Registry, services: Services) -> Accounts:
    """Plug /link, /unlink and the unlink buttons in."""
    accounts = Accounts(services)
    # A wrong code leaves a stranger a stranger: the access check runs after it.
    registry.add_command("link", accounts.link, before_approval=_proves_access, recheck=True)
    registry.add_command("unlink", accounts.unlink)
    registry.add_callback("unlink", accounts.unlink)
    return accounts
