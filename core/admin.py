"""Administration from chat: /users, /block, /unblock, /admin, /budget, and /usage for everyone.

Admins (``request.admin``) list users, block and unblock them, make or remove admins, and set
budgets (:mod:`core.budgets`); every change is in the store, so it holds at once in every bot
process and after a restart.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

from core.access import HAS_ADMIN_KEY
from core.budgets import (
    PERIODS,
    Budget,
    amount_text,
    global_budget,
    moment,
    parse_limit,
    period_bounds,
    set_global_budget,
    user_budget,
    with_budget,
)
from core.budgets import format_amount as format_amount  # bots/admin_cli.py imports it from here
from core.i18n import Money, Texts
from core.registry import Registry
from core.request import Request
from core.services import Services
from core.store.base import Store, UserRecord
from core.types import Notice, ReplyEvent

log = logging.getLogger(__name__)

USERS_LISTED = 100  # /users lists at most this many; `ferry users` lists everyone


# --- users and admins -----------------------------------------------------------------------


def user_label(user: UserRecord) -> str:
    return user.display_name or (user.identities[0] if user.identities else user.id)


async def set_admin(store: Store, user: UserRecord, is_admin: bool) -> UserRecord:
    """Give or take the admin role (stored on the user; FERRY_ADMINS stays as configured)."""
    updated = dataclasses.replace(user, is_admin=is_admin, status="approved" if is_admin else user.status)
    await store.put_user(updated)
    if is_admin:
        await store.set_meta(HAS_ADMIN_KEY, True)
    return updated


async def other_admins(store: Store, configured: tuple[str, ...], user: UserRecord) -> bool:
    """Whether someone besides ``user`` can still administer the bot."""
    if set(configured) - set(user.identities):
        return True
    return any(u.is_admin and u.id != user.id for u in await store.list_users())


# --- the chat commands ----------------------------------------------------------------------


class Admin:
    """The admin commands, /budget and /usage."""

    def __init__(self, services: Services) -> None:
        self._s = services

    def _notice(self, lang: str, key: str, **values: Any) -> Notice:
        return Notice(self._s.texts.get(lang, key, **values))

    def _status(self, lang: str, status: str) -> str:
        return self._s.texts.get(lang, f"admin.status_{status}") if status in (
            "pending", "approved", "denied", "blocked"
        ) else status

    async def _target(self, request: Request, who: str) -> UserRecord | Notice:
        if not request.admin:
            return self._notice(request.lang, "access.admins_only")
        if not who.strip():
            return self._notice(request.lang, "admin.usage")
        target = await self._s.access.find_user(who)
        if target is None:
            return self._notice(request.lang, "access.no_such_user", who=who.strip())
        return target

    # /users

    async def users(self, request: Request, args: str) -> AsyncIterator[ReplyEvent]:
        if not request.admin:
            yield self._notice(request.lang, "access.admins_only")
            return
        if request.msg.chat.is_group:
            yield self._notice(request.lang, "admin.private_only")
            return
        users = await self._s.store.list_users()
        month, _ = period_bounds("month", self._s.clock())
        lines = [self._s.texts.get(request.lang, "admin.users_header", count=len(users))]
        for user in users[:USERS_LISTED]:
            totals = await self._s.store.usage_totals(user.id, month)
            is_admin = self._s.access.is_admin(user, user.identities)
            lines.append(
                self._s.texts.get(
                    request.lang,
                    "admin.users_line",
                    name=user_label(user),
                    id=user.id,
                    status=self._status(request.lang, user.status)
                    + (self._s.texts.get(request.lang, "admin.is_admin") if is_admin else ""),
                    identities=", ".join(user.identities) or "–",
                    tokens=totals.tokens,
                    cost=Money(totals.cost),
                )
            )
        if len(users) > USERS_LISTED:
            lines.append(self._s.texts.get(request.lang, "admin.users_more", count=len(users) - USERS_LISTED))
        yield Notice("\n".join(lines))

    # /block, /unblock

    async def block(self, request: Request, args: str) -> AsyncIterator[ReplyEvent]:
        target = await self._target(request, args)
        if isinstance(target, Notice):
            yield target
            return
        if target.id == request.user.id:
            yield self._notice(request.lang, "admin.not_yourself")
            return
        await self._s.access.set_status(target, "blocked")
        log.info("admin %s blocked user %s", request.user.id, target.id)
        yield self._notice(request.lang, "admin.blocked", name=user_label(target))

    async def unblock(self, request: Request, args: str) -> AsyncIterator[ReplyEvent]:
        target = await self._target(request, args)
        if isinstance(target, Notice):
            yield target
            return
        await self._s.access.set_status(target, "approved")
        log.info("admin %s unblocked user %s", request.user.id, target.id)
        yield self._notice(request.lang, "admin.unblocked", name=user_label(target))

    # /admin add|remove USER

    async def admin(self, request: Request, args: str) -> AsyncIterator[ReplyEvent]:
        action, _, who = args.strip().partition(" ")
        action = action.lower()
        if request.admin and action not in ("add", "remove"):
            yield self._notice(request.lang, "admin.admin_usage")
            return
        target = await self._target(request, who)
        if isinstance(target, Notice):
            yield target
            return
        if action == "add":
            await set_admin(self._s.store, target, True)
            log.info("admin %s made user %s an admin", request.user.id, target.id)
            yield self._notice(request.lang, "admin.admin_added", name=user_label(target))
            return
        if set(self._s.settings.admins) & set(target.identities):
            yield self._notice(request.lang, "admin.admin_configured", name=user_label(target))
            return
        if not await other_admins(self._s.store, self._s.settings.admins, target):
            yield self._notice(request.lang, "admin.admin_last")
            return
        await set_admin(self._s.store, target, False)
        log.info("admin %s removed the admin role of user %s", request.user.id, target.id)
        yield self._notice(request.lang, "admin.admin_removed", name=user_label(target))

    # /budget USER|global [day|month] (AMOUNT UNIT | off)

    async def budget(self, request: Request, args: str) -> AsyncIterator[ReplyEvent]:
        if not request.admin:
            yield self._notice(request.lang, "access.admins_only")
            return
        words = args.split()
        if not words:
            yield self._notice(request.lang, "budget.usage")
            return
        who, rest = words[0], words[1:]
        target: UserRecord | None = None
        if who.lower() in self._s.texts.all_words("budget.global_words"):
            current = await global_budget(self._s.store)
            name = self._s.texts.get(request.lang, "budget.everyone")
        else:
            found = await self._target(request, who)
            if isinstance(found, Notice):
                yield found
                return
            target = found
            current = user_budget(target)
            name = user_label(target)
        changed = self._change(current, rest, self._s.texts)
        if changed is None:
            yield self._notice(request.lang, "budget.usage")
            return
        if changed is not current:
            if target is None:
                await set_global_budget(self._s.store, changed)
            else:
                await self._s.store.put_user(with_budget(target, changed))
            whose = target.id if target else "everyone"
            log.info("admin %s set the budget of %s to %s", request.user.id, whose, changed)
        yield self._notice(request.lang, "budget.show", name=name, budget=self._describe(request.lang, changed))

    @staticmethod
    def _change(current: Budget, words: list[str], texts: Texts) -> Budget | None:
        """The budget after ``words`` (``[]`` shows it unchanged); None when the words make no sense."""
        if not words:
            return current
        off = texts.all_words("budget.off_words")
        if len(words) == 1 and words[0].lower() in off:
            return {}
        period = next((p for p in PERIODS if words[0].lower() in texts.all_words(f"budget.{p}_words")), None)
        if period is None:
            return None
        if len(words) == 2 and words[1].lower() in off:
            return {p: lim for p, lim in current.items() if p != period}
        limit = parse_limit(words[1:])
        if limit is None:
            return None
        return {**current, period: limit}

    def _describe(self, lang: str, budget: Budget) -> str:
        if not budget:
            return self._s.texts.get(lang, "budget.none")
        texts = self._s.texts
        return ", ".join(
            texts.get(lang, f"budget.per_{period}", amount=amount_text(texts, lang, lim.amount, lim.unit))
            for period, lim in budget.items()
        )

    # /usage

    async def usage(self, request: Request, args: str) -> AsyncIterator[ReplyEvent]:
        user = request.user
        if args.strip():
            found = await self._target(request, args)
            if isinstance(found, Notice):
                yield found
                return
            user = found
        else:
            user = await self._s.store.get_user(user.id) or user
        text = await self.usage_text(request.lang, user)
        if not args.strip():
            text += await self._conversation_usage(request)
        yield Notice(text)

    async def _conversation_usage(self, request: Request) -> str:
        """The current conversation's sums, from the figures stored with each answer."""
        current = await self._s.store.list_conversations(request.scope, 1)
        if not current:
            return ""
        messages = await self._s.store.get_messages(current[0].id)
        tokens = sum(m.prompt_tokens + m.completion_tokens for m in messages)
        cost = Money(sum(m.cost for m in messages))
        title = current[0].title or self._s.texts.get(request.lang, "chat.untitled")
        values = {"title": title, "tokens": tokens, "cost": cost, "count": tokens}
        return "\n\n" + self._s.texts.get(request.lang, "usage.conversation", **values)

    async def usage_text(self, lang: str, user: UserRecord) -> str:
        t = self._s.texts
        now = self._s.clock()
        lines: list[str] = [t.get(lang, "usage.header", name=user_label(user))]
        budget = user_budget(user)
        for period in PERIODS:
            start, end = period_bounds(period, now)
            totals = await self._s.store.usage_totals(user.id, start)
            cost = Money(totals.cost)
            lines += ["", t.get(lang, f"usage.{period}", tokens=totals.tokens, cost=cost, count=totals.tokens)]
            for model, (prompt, completion, model_cost) in sorted(totals.by_model.items()):
                tokens, spent = prompt + completion, Money(model_cost)
                lines.append(t.get(lang, "usage.model", model=model, tokens=tokens, cost=spent, count=tokens))
            limit = budget.get(period)
            if limit is not None:
                left = max(limit.amount - limit.used(totals), 0.0)
                lines.append(
                    t.get(
                        lang,
                        "usage.left",
                        left=amount_text(self._s.texts, lang, left, limit.unit),
                        limit=amount_text(self._s.texts, lang, limit.amount, limit.unit),
                        resets=moment(end),
                    )
                )
        if not budget:
            lines += ["", t.get(lang, "usage.no_budget")]
        return "\n".join(lines)


def register(registry: Registry, services: Services) -> Admin:
    """Plug the admin commands, /budget and /usage in (the budget check itself is :mod:`core.budgets`)."""
    admin = Admin(services)
    for handler in (admin.users, admin.block, admin.unblock, admin.admin, admin.budget, admin.usage):
        registry.add_command(handler.__name__, handler)
    return admin
