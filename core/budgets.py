"""Budgets: caps on tokens or money (USD) per UTC day and month, for one user or for everyone.

A user's budget is kept in ``UserRecord.extra["budget"]`` (so it follows the user through linking
and goes with /forget); everyone's in store meta ``budget_global``. A message over a budget is
declined with when it resets; admins are told once a month when the global budget passes 80 %.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from core.i18n import Money, Texts
from core.readahead import ReadAhead
from core.registry import Registry
from core.request import Request
from core.services import Services
from core.store.base import Store, UsageRecord, UsageTotals, UserRecord
from core.types import AdminAlert, Notice, ReplyEvent

PERIODS = ("day", "month")
UNITS = ("tokens", "usd")
GLOBAL_BUDGET_KEY = "budget_global"
ALERT_KEY = "budget_alert_sent"  # the month ("2026-11") whose 80 % alert went out
ALERT_SHARE = 0.8

_UNIT_WORDS = {"tokens": "tokens", "token": "tokens", "tok": "tokens", "usd": "usd", "$": "usd", "dollar": "usd"}
_AMOUNT = re.compile(r"\$?([0-9][0-9_,]*(?:\.[0-9]+)?)([km]?)\Z", re.IGNORECASE)


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


async def global_budget(store: Store | ReadAhead) -> Budget:
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


async def exceeded(store: Store, user: UserRecord, now: float, reads: ReadAhead | None = None) -> Exceeded | None:
    """The first used-up budget for this user (the global one first), or None (``reads``: the turn's started reads)."""
    for is_global, budget in ((True, await global_budget(reads or store)), (False, user_budget(user))):
        for period, limit in budget.items():
            start, end = period_bounds(period, now)
            totals = await (store.global_usage_totals(start) if is_global else store.usage_totals(user.id, start))
            if limit.used(totals) >= limit.amount:
                return Exceeded(period, limit, end, is_global)
    return None


def amount_text(texts: Texts, lang: str, amount: float, unit: str) -> str:
    """An amount of tokens or dollars, written the way the language writes numbers and money."""
    if unit == "tokens":
        return texts.get(lang, "budget.tokens", count=round(amount))
    return texts.format(lang, Money(amount))


class Budgets:
    """The pre-chat budget check and the monthly alert to the admins."""

    def __init__(self, services: Services) -> None:
        self._s = services

    async def check(self, request: Request) -> Notice | None:
        """Decline a message when the user's or everyone's budget is used up."""
        # ``request.user`` was read when this message's turn came (identify): no second read.
        over = await exceeded(self._s.store, request.user, self._s.clock(), request.reads)
        if over is None:
            return None
        key = "budget.global_over" if over.is_global else f"budget.over_{over.period}"
        limit = amount_text(self._s.texts, request.lang, over.limit.amount, over.limit.unit)
        text = self._s.texts.get(request.lang, key, limit=limit, resets=moment(over.resets_at))
        return Notice(text, is_error=True)

    async def after_answer(self, request: Request, usage: UsageRecord) -> AsyncIterator[ReplyEvent]:
        """Tell the admins, once a month, that everyone together passed 80 % of the monthly budget."""
        limit = (await global_budget(request.reads or self._s.store)).get("month")  # as the check read it
        if limit is None:
            return
        now = self._s.clock()
        start, end = period_bounds("month", now)
        used = limit.used(await self._s.store.global_usage_totals(start))
        if used < ALERT_SHARE * limit.amount:
            return
        month = dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y-%m")
        first: list[bool] = []

        def mark(old: Any) -> Any:
            first.append(old != month)
            return month

        # Atomic in the store, so two bot processes never both send it.
        await self._s.store.update_meta(ALERT_KEY, mark)
        if not first[0]:
            return
        admins = await self._s.access.admin_identities()
        if not admins:
            return
        lang = self._s.settings.default_lang
        yield AdminAlert(
            to=admins,
            text=self._s.texts.get(
                lang,
                "budget.alert",
                used=amount_text(self._s.texts, lang, used, limit.unit),
                limit=amount_text(self._s.texts, lang, limit.amount, limit.unit),
                percent=int(used * 100 // limit.amount),
                resets=moment(end),
            ),
        )


def register(registry: Registry, services: Services) -> Budgets:
    """Plug the budget check in before the model, and the alert after each answer."""
    budgets = Budgets(services)
    registry.add_chat_check(budgets.check, reads_meta=(GLOBAL_BUDGET_KEY,))
    registry.add_answer_hook(budgets.after_answer)
    return budgets
