"""Alerts for people on the other messenger, handed between the bot processes through the store.

An access request that arrives on Telegram must reach an admin who is only on Signal, and the
Telegram process cannot send on Signal. It leaves the alert in the store; the Signal process
collects and delivers it. Entries are capped and expire, so a messenger that is not running
does not make the outbox grow without end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.store.base import Store
from core.types import AdminAlert, Button

MESSENGERS = ("telegram", "signal")  # the platforms that run a process to collect alerts
KEEP = 200
MAX_AGE = 7 * 24 * 3600


def _key(platform: str) -> str:
    return f"outbox:{platform}"


def split(alert: AdminAlert, platform: str) -> tuple[AdminAlert | None, dict[str, AdminAlert]]:
    """The part of an alert the current messenger delivers, and the parts for the others."""
    here = tuple(i for i in alert.to if i.split(":", 1)[0] == platform)
    elsewhere: dict[str, AdminAlert] = {}
    for other in MESSENGERS:
        if other == platform:
            continue
        to = tuple(i for i in alert.to if i.split(":", 1)[0] == other)
        if to:
            elsewhere[other] = AdminAlert(to=to, text=alert.text, buttons=alert.buttons)
    mine = AdminAlert(to=here, text=alert.text, buttons=alert.buttons) if here else None
    return mine, elsewhere


def _encode(alert: AdminAlert, at: float) -> dict[str, Any]:
    return {
        "to": list(alert.to),
        "text": alert.text,
        "buttons": [[[b.label, b.data] for b in row] for row in alert.buttons],
        "at": at,
    }


def _decode(entry: dict[str, Any]) -> AdminAlert:
    buttons = tuple(tuple(Button(label, data) for label, data in row) for row in entry.get("buttons", []))
    return AdminAlert(to=tuple(entry["to"]), text=str(entry["text"]), buttons=buttons)


async def post(store: Store, platform: str, alert: AdminAlert, now: float) -> None:
    """Leave an alert for ``platform``'s process."""

    def add(old: Any) -> list[dict[str, Any]]:
        entries = [e for e in (old or []) if now - float(e.get("at", now)) < MAX_AGE]
        entries.append(_encode(alert, now))
        return entries[-KEEP:]

    await store.update_meta(_key(platform), add)


async def collect(store: Store, platform: str, now: Callable[[], float]) -> list[AdminAlert]:
    """Take every alert waiting for ``platform`` (each is delivered by one process only)."""
    taken: list[dict[str, Any]] = []

    def take(old: Any) -> None:
        taken.extend(old or [])
        return None

    if await store.get_meta(_key(platform)) is None:  # the common case: no write, no lock
        return []
    await store.update_meta(_key(platform), take)
    limit = now() - MAX_AGE
    return [_decode(e) for e in taken if float(e.get("at", 0)) >= limit]


async def forget(store: Store, identities: tuple[str, ...], names: tuple[str, ...] = ()) -> None:
    """Drop waiting alerts to or about these identities (a person asked to be forgotten)."""
    marks = tuple(m for m in (*identities, *names) if m)

    def keep(old: Any) -> list[dict[str, Any]] | None:
        entries = [
            e for e in (old or [])
            if not any(m in e.get("text", "") or m in e.get("to", []) for m in marks)
        ]
        return entries or None

    for platform in MESSENGERS:
        if await store.get_meta(_key(platform)) is not None:
            await store.update_meta(_key(platform), keep)
