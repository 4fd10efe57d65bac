"""Who may talk to the bot: access modes, admins and the one-time claim code.

The bot spends its owner's money, so the default mode is ``approval``: a stranger's first
message asks the admins, who approve or deny it. With no admin configured, a claim code is
logged at start; whoever sends ``/claim CODE`` first becomes the admin.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Callable, Iterable

from core.settings import Settings
from core.store.base import Store, UserRecord, UserStatus

log = logging.getLogger(__name__)

CLAIM_KEY = "claim_code"
HAS_ADMIN_KEY = "has_admin"
# Letters and digits that cannot be mistaken for each other when read from a log.
_CLAIM_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


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
        """A user by id or by one of their identities."""
        who = who.strip()
        return await self._store.get_user(who) or await self._store.find_user(who)

    async def set_status(self, user: UserRecord, status: UserStatus) -> UserRecord:
        updated = dataclasses.replace(user, status=status)
        await self._store.put_user(updated)
        return updated
