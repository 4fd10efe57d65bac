"""Administration from chat, budgets and /usage.

Admins (``turn.admin``) list users, block and unblock them, make or remove admins, and set
budgets; every change is in the store, so it holds at once in every bot process and after a
restart. A budget caps tokens or money (USD) per UTC day and per UTC month, for one user (kept in
``UserRecord.extra["budget"]``, so it follows the user through linking and goes with /forget) or
for everyone together (store meta ``budget_global``). A user over a budget is told when it resets;
admins are told once a month when the global budget passes 80 %.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.access import HAS_ADMIN_KEY
from core.i18n import Money, Texts
from core.store.base import Store, UsageRecord, UsageTotals, UserRecord
from core.turn import Turn
from core.types import AdminAlert, Notice, ReplyEvent

if TYPE_CHECKING:
    from core.assistant import Assistant

log = logging.getLogger(__name__)

PERIODS = ("day", "month")
UNITS = ("tokens", "usd")
GLOBAL_BUDGET_KEY = "budget_global"
ALERT_KEY = "budget_alert_sent"  # the month ("2026-11") whose 80 % alert went out
ALERT_SHARE = 0.8
USERS_LISTED = 100  # /users lists at most this many; `ferry users` lists everyone

_UNIT_WORDS = {"tokens": "tokens", "token": "tokens", "tok": "tokens", "usd": "usd", "$": "usd", "dollar": "usd"}
_AMOUNT = re.compile(r"\$?([0-9][0-9_,]*(?:\.[0-9]+)?)([km]?)\Z", re.IGNORECASE)


# --- budgets --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limit:
    """A cap on one period: ``amount`` tokens, or ``amount`` US dollars."""

    amount: float
    unit: str  # "tokens" | "usd"

    def used(self, totals: UsageTotals) -> float:
        return float(totals.tokens) if self.unit == "tokens" else totals.cost


Budget = dict[str, Limit]
"""Limits by period (``day``, ``month``); a period without a limit is absent."""


def budget_from_json(data: Any) -> Budget:
    """A budget as stored (``{"day": {"amount": 50000, "unit": "tokens"}}``); junk reads as none."""
    out: Budget = {}
    if isinstance(data, dict):
        for period in PERIODS:
            item = data.get(period)
            if isinstance(item, dict) and item.get("unit") in UNITS and isinstance(item.get("amount"), int | float):
                out[period] = Limit(float(item["amount"]), item["unit"])
    return out


def budget_to_json(budget: Budget) -> dict[str, Any] | None:
    if not budget:
        return None
    return {p: {"amount": lim.amount, "unit": lim.unit} for p, lim in budget.items()}


def user_budget(user: UserRecord) -> Budget:
    return budget_from_json(user.extra.get("budget"))


def with_budget(user: UserRecord, budget: Budget) -> UserRecord:
    extra = dict(user.extra)
    stored = budget_to_json(budget)
    if stored is None:
        extra.pop("budget", None)
    else:
        extra["budget"] = stored
    return dataclasses.replace(user, extra=extra)


def period_bounds(period: str, now: float) -> tuple[float, float]:
    """The UTC start of the current day or month containing ``now``, and the start of the next."""
    t = dt.datetime.fromtimestamp(now, dt.UTC)
    if period == "day":
        start = t.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + dt.timedelta(days=1)
    else:
        start = t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start.timestamp(), end.timestamp()


def moment(at: float) -> dt.datetime:
    """A timestamp as the UTC time a text writes in its language's way."""
    return dt.datetime.fromtimestamp(at, dt.UTC)


def format_amount(amount: float, unit: str) -> str:
    """``50,000 tokens``, ``$5.00``, or ``$0.0011``: sums not in whole cents keep four decimals, so
    that small sums do not read as zero and what is left does not read as all of it."""
    if unit == "tokens":
        return f"{round(amount):,} tokens"
    if 0 < amount < 0.00005:
        return "<$0.0001"
    cents = amount * 100
    return f"${amount:,.2f}" if amount >= 100 or abs(cents - round(cents)) < 1e-6 else f"${amount:,.4f}"


def parse_limit(words: list[str]) -> Limit | None:
    """``["50000", "tokens"]``, ``["50k", "tokens"]``, ``["5", "usd"]`` or ``["$5"]``; None if not a limit."""
    if not words or len(words) > 2:
        return None
    match = _AMOUNT.match(words[0])
    if not match:
        return None
    unit = _UNIT_WORDS.get(words[1].lower()) if len(words) == 2 else ("usd" if words[0].startswith("$") else None)
    if unit is None:
        return None
    amount = float(match.group(1).replace("_", "").replace(",", ""))
    amount *= {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2).lower()]
    if amount <= 0:
        return None
    return Limit(round(amount) if unit == "tokens" else amount, unit)


async def global_budget(store: Store) -> Budget:
    return budget_from_json(await store.get_meta(GLOBAL_BUDGET_KEY))


async def set_global_budget(store: Store, budget: Budget) -> None:
    await store.set_meta(GLOBAL_BUDGET_KEY, budget_to_json(budget))


@dataclass(frozen=True)
class Exceeded:
    """A budget that is used up: which, and when it resets."""

    period: str
    limit: Limit
    resets_at: float
    is_global: bool


async def exceeded(store: Store, user: UserRecord, now: float) -> Exceeded | None:
    """The first used-up budget for this user (the global one first), or None."""
    for is_global, budget in ((True, await global_budget(store)), (False, user_budget(user))):
        for period, limit in budget.items():
            start, end = period_bounds(period, now)
            totals = await (store.global_usage_totals(start) if is_global else store.usage_totals(user.id, start))
            if limit.used(totals) >= limit.amount:
                return Exceeded(period, limit, end, is_global)
    return None


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
    """The admin commands, the budget check and alert, and /usage, on one assistant."""

    def __init__(self, assistant: Assistant) -> None:
        self._a = assistant

    def _notice(self, lang: str, key: str, **values: Any) -> Notice:
        return Notice(self._a.texts.get(lang, key, **values))

    def _amount(self, lang: str, amount: float, unit: str) -> str:
        if unit == "tokens":
            return self._a.texts.get(lang, "budget.tokens", count=round(amount))
        return self._a.texts.format(lang, Money(amount))

    def _status(self, lang: str, status: str) -> str:
        return self._a.texts.get(lang, f"admin.status_{status}") if status in (
            "pending", "approved", "denied", "blocked"
        ) else status

    async def _target(self, turn: Turn, who: str) -> UserRecord | Notice:
        if not turn.admin:
            return self._notice(turn.lang, "access.admins_only")
        if not who.strip():
            return self._notice(turn.lang, "admin.usage")
        target = await self._a.access.find_user(who)
        if target is None:
            return self._notice(turn.lang, "access.no_such_user", who=who.strip())
        return target

    # /users

    async def users(self, turn: Turn, args: str) -> AsyncIterator[ReplyEvent]:
        if not turn.admin:
            yield self._notice(turn.lang, "access.admins_only")
            return
        if turn.msg.chat.is_group:
            yield self._notice(turn.lang, "admin.private_only")
            return
        users = await self._a.store.list_users()
        month, _ = period_bounds("month", self._a.clock())
        lines = [self._a.texts.get(turn.lang, "admin.users_header", count=len(users))]
        for user in users[:USERS_LISTED]:
            totals = await self._a.store.usage_totals(user.id, month)
            is_admin = self._a.access.is_admin(user, user.identities)
            lines.append(
                self._a.texts.get(
                    turn.lang,
                    "admin.users_line",
                    name=user_label(user),
                    id=user.id,
                    status=self._status(turn.lang, user.status)
                    + (self._a.texts.get(turn.lang, "admin.is_admin") if is_admin else ""),
                    identities=", ".join(user.identities) or "–",
                    tokens=totals.tokens,
                    cost=Money(totals.cost),
                )
            )
        if len(users) > USERS_LISTED:
            lines.append(self._a.texts.get(turn.lang, "admin.users_more", count=len(users) - USERS_LISTED))
        yield Notice("\n".join(lines))

    # /block, /unblock

    async def block(self, turn: Turn, args: str) -> AsyncIterator[ReplyEvent]:
        target = await self._target(turn, args)
        if isinstance(target, Notice):
            yield target
            return
        if target.id == turn.user.id:
            yield self._notice(turn.lang, "admin.not_yourself")
            return
        await self._a.access.set_status(target, "blocked")
        log.info("admin %s blocked user %s", turn.user.id, target.id)
        yield self._notice(turn.lang, "admin.blocked", name=user_label(target))

    async def unblock(self, turn: Turn, args: str) -> AsyncIterator[ReplyEvent]:
        target = await self._target(turn, args)
        if isinstance(target, Notice):
            yield target
            return
        await self._a.access.set_status(target, "approved")
        log.info("admin %s unblocked user %s", turn.user.id, target.id)
        yield self._notice(turn.lang, "admin.unblocked", name=user_label(target))

    # /admin add|remove USER

    async def admin(self, turn: Turn, args: str) -> AsyncIterator[ReplyEvent]:
        action, _, who = args.strip().partition(" ")
        action = action.lower()
        if turn.admin and action not in ("add", "remove"):
            yield self._notice(turn.lang, "admin.admin_usage")
            return
        target = await self._target(turn, who)
        if isinstance(target, Notice):
            yield target
            return
        if action == "add":
            await set_admin(self._a.store, target, True)
            log.info("admin %s made user %s an admin", turn.user.id, target.id)
            yield self._notice(turn.lang, "admin.admin_added", name=user_label(target))
            return
        if set(self._a.settings.admins) & set(target.identities):
            yield self._notice(turn.lang, "admin.admin_configured", name=user_label(target))
            return
        if not await other_admins(self._a.store, self._a.settings.admins, target):
            yield self._notice(turn.lang, "admin.admin_last")
            return
        await set_admin(self._a.store, target, False)
        log.info("admin %s removed the admin role of user %s", turn.user.id, target.id)
        yield self._notice(turn.lang, "admin.admin_removed", name=user_label(target))

    # /budget USER|global [day|month] (AMOUNT UNIT | off)

    async def budget(self, turn: Turn, args: str) -> AsyncIterator[ReplyEvent]:
        if not turn.admin:
            yield self._notice(turn.lang, "access.admins_only")
            return
        words = args.split()
        if not words:
            yield self._notice(turn.lang, "budget.usage")
            return
        who, rest = words[0], words[1:]
        target: UserRecord | None = None
        if who.lower() in self._a.texts.all_words("budget.global_words"):
            current = await global_budget(self._a.store)
            name = self._a.texts.get(turn.lang, "budget.everyone")
        else:
            found = await self._target(turn, who)
            if isinstance(found, Notice):
                yield found
                return
            target = found
            current = user_budget(target)
            name = user_label(target)
        changed = self._change(current, rest, self._a.texts)
        if changed is None:
            yield self._notice(turn.lang, "budget.usage")
            return
        if changed is not current:
            if target is None:
                await set_global_budget(self._a.store, changed)
            else:
                await self._a.store.put_user(with_budget(target, changed))
            log.info("admin %s set the budget of %s to %s", turn.user.id, target.id if target else "everyone", changed)
        yield self._notice(turn.lang, "budget.show", name=name, budget=self._describe(turn.lang, changed))

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
            return self._a.texts.get(lang, "budget.none")
        return ", ".join(
            self._a.texts.get(lang, f"budget.per_{period}", amount=self._amount(lang, lim.amount, lim.unit))
            for period, lim in budget.items()
        )

    # the chat check and the answer hook

    async def check(self, turn: Turn) -> Notice | None:
        """Decline a message when the user's or everyone's budget is used up."""
        user = await self._a.store.get_user(turn.user.id) or turn.user
        over = await exceeded(self._a.store, user, self._a.clock())
        if over is None:
            return None
        key = "budget.global_over" if over.is_global else f"budget.over_{over.period}"
        limit = self._amount(turn.lang, over.limit.amount, over.limit.unit)
        text = self._a.texts.get(turn.lang, key, limit=limit, resets=moment(over.resets_at))
        return Notice(text, is_error=True)

    async def after_answer(self, turn: Turn, usage: UsageRecord) -> AsyncIterator[ReplyEvent]:
        """Tell the admins, once a month, that everyone together passed 80 % of the monthly budget."""
        limit = (await global_budget(self._a.store)).get("month")
        if limit is None:
            return
        now = self._a.clock()
        start, end = period_bounds("month", now)
        used = limit.used(await self._a.store.global_usage_totals(start))
        if used < ALERT_SHARE * limit.amount:
            return
        month = dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y-%m")
        first: list[bool] = []

        def mark(old: Any) -> Any:
            first.append(old != month)
            return month

        # Atomic in the store, so two bot processes never both send it.
        await self._a.store.update_meta(ALERT_KEY, mark)
        if not first[0]:
            return
        admins = await self._a.access.admin_identities()
        if not admins:
            return
        lang = self._a.settings.default_lang
        yield AdminAlert(
            to=admins,
            text=self._a.texts.get(
                lang,
                "budget.alert",
                used=self._amount(lang, used, limit.unit),
                limit=self._amount(lang, limit.amount, limit.unit),
                percent=int(used * 100 // limit.amount),
                resets=moment(end),
            ),
        )

    # /usage

    async def usage(self, turn: Turn, args: str) -> AsyncIterator[ReplyEvent]:
        user = turn.user
        if args.strip():
            found = await self._target(turn, args)
            if isinstance(found, Notice):
                yield found
                return
            user = found
        else:
            user = await self._a.store.get_user(user.id) or user
        text = await self.usage_text(turn.lang, user)
        if not args.strip():
            text += await self._conversation_usage(turn)
        yield Notice(text)

    async def _conversation_usage(self, turn: Turn) -> str:
        """The current conversation's sums, from the figures stored with each answer."""
        current = await self._a.store.list_conversations(turn.scope, 1)
        if not current:
            return ""
        messages = await self._a.store.get_messages(current[0].id)
        tokens = sum(m.prompt_tokens + m.completion_tokens for m in messages)
        cost = Money(sum(m.cost for m in messages))
        title = current[0].title or self._a.texts.get(turn.lang, "chat.untitled")
        values = {"title": title, "tokens": tokens, "cost": cost, "count": tokens}
        return "\n\n" + self._a.texts.get(turn.lang, "usage.conversation", **values)

    async def usage_text(self, lang: str, user: UserRecord) -> str:
        t = self._a.texts
        now = self._a.clock()
        lines: list[str] = [t.get(lang, "usage.header", name=user_label(user))]
        budget = user_budget(user)
        for period in PERIODS:
            start, end = period_bounds(period, now)
            totals = await self._a.store.usage_totals(user.id, start)
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
                        left=self._amount(lang, left, limit.unit),
                        limit=self._amount(lang, limit.amount, limit.unit),
                        resets=moment(end),
                    )
                )
        if not budget:
            lines += ["", t.get(lang, "usage.no_budget")]
        return "\n".join(lines)


def register(assistant: Assistant) -> Admin:
    """Plug the admin commands, the budget check and alert, and /usage into the assistant."""
    admin = Admin(assistant)
    assistant.add_command("users", admin.users)
    assistant.add_command("block", admin.block)
    assistant.add_command("unblock", admin.unblock)
    assistant.add_command("admin", admin.admin)
    assistant.add_command("budget", admin.budget)
    assistant.add_command("usage", admin.usage)
    assistant.add_chat_check(admin.check)
    assistant.add_answer_hook(admin.after_answer)
    return admin
