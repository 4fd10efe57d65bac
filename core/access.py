"""Who may talk to the bot: access modes, admins and the one-time claim code.

The bot spends its owner's money, so the default mode is ``approval``: a stranger's first
message asks the admins, who approve or deny it. With no admin configured, a claim code is
logged at start; whoever sends ``/claim CODE`` first becomes the admin.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import secrets
from collections.abc import Callable, Iterable, Sequence

from core.settings import Settings
from core.store.base import Store, UserRecord, UserStatus

log = logging.getLogger(__name__)

CLAIM_KEY = "claim_code"
HAS_ADMIN_KEY = "has_admin"
# Letters and digits that cannot be mistaken for each other when read from a log.
_CLAIM_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


ALIASES = "aliases"  # UserRecord.extra: {identity: the identity people see for it}


def alias_pairs(identities: Sequence[str]) -> dict[str, str]:
    """``(sender, *aliases)`` as {sender: its number} when the sender is a Signal UUID with a number."""
    sender, aliases = identities[0], identities[1:]
    platform = sender.partition(":")[0]
    seen = [a for a in aliases if a.partition(":")[0] == platform and a != sender]
    return {sender: seen[0]} if seen else {}


def shown_identities(identities: Sequence[str]) -> tuple[str, ...]:
    """The identities a person recognises: a Signal number rather than the UUID behind it."""
    hidden = set(alias_pairs(identities)) if identities else set()
    return tuple(i for i in identities if i not in hidden)


def seen_as(user: UserRecord, identity: str) -> str:
    """How people know ``identity`` of ``user``: its number when the store knows one."""
    return str((user.extra.get(ALIASES) or {}).get(identity, identity))


def normalise_identity(who: str) -> str:
    """An identity as typed by a person: ``+49 151 …`` and ``signal:+49 (151) …`` are ``signal:+49151…``."""
    who = who.strip()
    platform, sep, rest = who.partition(":")
    if not sep and who.startswith("+"):
        platform, rest = "signal", who
    if platform == "signal" and rest.lstrip().startswith("+"):
        return "signal:+" + re.sub(r"[^0-9]", "", rest)
    return who


def with_aliases(user: UserRecord, identities: Sequence[str]) -> UserRecord:
    """The user with the number beside each Signal UUID among ``identities`` (``user`` itself when known)."""
    pairs = alias_pairs(identities) if identities else {}
    known = dict(user.extra.get(ALIASES) or {})
    if not pairs or all(known.get(k) == v for k, v in pairs.items()):
        return user
    return dataclasses.replace(user, extra={**user.extra, ALIASES: {**known, **pairs}})


async def remember_aliases(store: Store, user: UserRecord, identities: Sequence[str]) -> UserRecord:
    """Keep the number beside a Signal UUID, so admins can name the person by what they see."""
    updated = with_aliases(user, identities)
    if updated is not user:
        await store.put_user(updated)
    return updated


def new_user_status(settings: Settings, identities: Iterable[str]) -> UserStatus:
    """The status a first-time user starts with under the configured access mode."""
    ids = set(identities)
    if settings.access == "open" or ids & set(settings.admins):
        return "approved"
    if settings.access == "allowlist" and ids & set(settings.allowed):
        return "approved"
    return "pending"


class AccessControl:
    """Access decisions over the store; admin rights come from FERRY_ADMINS or the store."""

    def __init__(self, settings: Settings, store: Store, clock: Callable[[], float]) -> None:
        self._settings = settings
        self._store = store
        self._clock = clock

    def is_admin(self, user: UserRecord | None, identities: Iterable[str]) -> bool:
        if user is not None and user.is_admin:
            return True
        admins = set(self._settings.admins)
        return bool(admins & set(identities)) or bool(user and admins & set(user.identities))

    async def admin_identities(self) -> tuple[str, ...]:
        """Every identity an access request should reach."""
        found = list(self._settings.admins)
        if await self._store.get_meta(HAS_ADMIN_KEY):
            for user in await self._store.list_users():
                if user.is_admin:
                    found.extend(user.identities)
        return tuple(dict.fromkeys(found))

    async def ensure_claim_code(self) -> str | None:
        """Log a claim code when nobody can administer the bot; returns it (or None)."""
        if self._settings.admins or await self._store.get_meta(HAS_ADMIN_KEY):
            return None
        code = await self._store.get_meta(CLAIM_KEY)
        if not code:
            raw = "".join(secrets.choice(_CLAIM_ALPHABET) for _ in range(8))
            code = f"{raw[:4]}-{raw[4:]}"
            await self._store.set_meta(CLAIM_KEY, code)
        log.warning("No admin is configured. Send '/claim %s' to the bot to become its admin.", code)
        return str(code)

    async def claim(self, user: UserRecord, code: str) -> str:
        """Try a claim code; returns ``ok``, ``wrong`` or ``none`` (nothing to claim)."""
        expected = await self._store.get_meta(CLAIM_KEY)
        if not expected:
            return "none"
        if not secrets.compare_digest(code.strip().upper().replace(" ", ""), str(expected)):
            return "wrong"
        await self._store.put_user(dataclasses.replace(user, is_admin=True, status="approved"))
        await self._store.set_meta(HAS_ADMIN_KEY, True)
        await self._store.set_meta(CLAIM_KEY, None)
        log.info("user %s claimed the admin role", user.id)
        return "ok"

    async def find_user(self, who: str) -> UserRecord | None:
        """A user by id, by one of their identities, or by the Signal number people see for one."""
        who = normalise_identity(who)
        found = await self._store.get_user(who) or await self._store.find_user(who)
        if found is not None or not who.startswith("signal:+"):
            return found
        # Signal names people by a UUID; the number is kept beside it (rare: admin commands only).
        for user in await self._store.list_users():
            aliases = user.extra.get(ALIASES) or {}
            if any(aliases.get(identity) == who for identity in user.identities):  # not one unlinked since
                return user
        return None

    async def set_status(self, user: UserRecord, status: UserStatus) -> UserRecord:
        updated = dataclasses.replace(user, status=status)
        await self._store.put_user(updated)
        return updated
