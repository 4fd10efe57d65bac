"""Admin commands from chat, budgets with their resets and the 80 % alert, and /usage."""

from __future__ import annotations

import datetime as dt

import pytest

from core import outbox
from core.budgets import Limit, format_amount, parse_limit, period_bounds
from core.store.memory import MemoryStore
from core.types import AdminAlert, ChatKey, FinalText
from tests.conftest import MakeAssistant
from tests.core.test_accounts import CODE, T0, Clock, notice
from tests.core.test_assistant import final, say
from tests.fakes.openai_server import FakeOpenAI, Usage

ADMIN = "telegram:99"
ALICE = "telegram:1"
BOB = "signal:bob-uuid"


def utc(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["50000", "tokens"], Limit(50000, "tokens")),
        (["50k", "tokens"], Limit(50000, "tokens")),
        (["1,500", "token"], Limit(1500, "tokens")),
        (["5", "usd"], Limit(5.0, "usd")),
        (["2.50", "USD"], Limit(2.5, "usd")),
        (["$5"], Limit(5.0, "usd")),
        (["0", "tokens"], None),
        (["-5", "usd"], None),
        (["five", "usd"], None),
        (["5", "euro"], None),
        (["5"], None),
        ([], None),
    ],
)
def test_parse_limit(words: list[str], expected: Limit | None) -> None:
    assert parse_limit(words) == expected


@pytest.mark.parametrize(
    ("now", "period", "start", "end"),
    [
        ("2026-11-19 08:26:40", "day", "2026-11-19 00:00", "2026-11-20 00:00"),
        ("2026-11-19 08:26:40", "month", "2026-11-01 00:00", "2026-12-01 00:00"),
        ("2026-12-31 23:59:59", "month", "2026-12-01 00:00", "2027-01-01 00:00"),
        ("2028-02-29 12:00:00", "day", "2028-02-29 00:00", "2028-03-01 00:00"),
    ],
)
def test_periods_are_utc_days_and_months(now: str, period: str, start: str, end: str) -> None:
    assert period_bounds(period, utc(now)) == (utc(start), utc(end))


def test_amounts_read_well() -> None:
    assert format_amount(50000, "tokens") == "50,000 tokens"
    assert format_amount(5, "usd") == "$5.00"
    assert format_amount(0.25, "usd") == "$0.25"
    assert format_amount(0.00042, "usd") == "$0.0004"
    assert format_amount(0.000027, "usd") == "<$0.0001"
    assert format_amount(0, "usd") == "$0.00"
    assert format_amount(0.99895, "usd") == "$0.9990"  # not "$1.00" when something is used
    assert format_amount(1234.5678, "usd") == "$1,234.57"


async def test_admin_commands_are_refused_to_non_admins(make_assistant: MakeAssistant) -> None:
    assistant = await make_assistant(MemoryStore(), clock=Clock(T0), FERRY_ADMINS=ADMIN)
    await say(assistant, "hi", BOB)
    for command in (
        "/users", f"/block {BOB}", f"/unblock {BOB}", f"/admin add {ALICE}", f"/admin remove {ADMIN}",
        f"/budget {BOB} off", "/budget global month 1 usd", f"/usage {BOB}", f"/approve {BOB}",
    ):
        assert notice(await say(assistant, command, ALICE)).text == "Only an admin can do that.", command
    alice = await assistant.store.find_user(ALICE)
    assert alice is not None and not alice.is_admin and alice.extra == {}
    assert await assistant.store.get_meta("budget_global") is None


async def test_admins_list_block_unblock_and_make_admins_at_once(make_assistant: MakeAssistant) -> None:
    assistant = await make_assistant(MemoryStore(), clock=Clock(T0), FERRY_ADMINS=ADMIN)
    await say(assistant, "hello", ALICE, sender_name="Alice")
    await say(assistant, "hello", BOB, sender_name="Bob")
    await say(assistant, "hi", ADMIN, sender_name="Root")

    listing = notice(await say(assistant, "/users", ADMIN)).text
    assert listing.startswith("Users (3):")
    assert "Alice" in listing and ALICE in listing and "approved" in listing
    assert "Root" in listing and "approved, admin" in listing
    assert "tokens" in listing

    assert "Bob is blocked" in notice(await say(assistant, f"/block {BOB}", ADMIN)).text
    assert "don't have access" in notice(await say(assistant, "are you there?", BOB)).text
    assert "blocked" in notice(await say(assistant, "/users", ADMIN)).text
    assert "unblocked" in notice(await say(assistant, f"/unblock {BOB}", ADMIN)).text
    assert final(await say(assistant, "back again", BOB)).text == "You said: back again"
    assert "yourself" in notice(await say(assistant, f"/block {ADMIN}", ADMIN)).text
    assert "don't know a user" in notice(await say(assistant, "/block telegram:404", ADMIN)).text

    assert "now an admin" in notice(await say(assistant, f"/admin add {ALICE}", ADMIN)).text
    assert await assistant.store.get_meta("has_admin") is True
    assert notice(await say(assistant, "/users", ALICE)).text.startswith("Users (3):")
    assert "FERRY_ADMINS" in notice(await say(assistant, f"/admin remove {ADMIN}", ALICE)).text
    assert "no longer an admin" in notice(await say(assistant, f"/admin remove {ALICE}", ADMIN)).text
    assert notice(await say(assistant, "/users", ALICE)).text == "Only an admin can do that."
    assert "/admin add USER" in notice(await say(assistant, "/admin", ADMIN)).text


async def test_the_last_admin_cannot_be_removed(make_assistant: MakeAssistant) -> None:
    assistant = await make_assistant(MemoryStore(), clock=Clock(T0))
    await say(assistant, f"/claim {await assistant.store.get_meta('claim_code')}", ALICE)
    assert "last admin" in notice(await say(assistant, f"/admin remove {ALICE}", ALICE)).text
    await say(assistant, "hi", BOB)
    await say(assistant, f"/admin add {BOB}", ALICE)
    assert "no longer an admin" in notice(await say(assistant, f"/admin remove {ALICE}", BOB)).text


async def test_admin_lists_are_not_shown_in_groups(make_assistant: MakeAssistant) -> None:
    assistant = await make_assistant(MemoryStore(), clock=Clock(T0), FERRY_ADMINS=ADMIN)
    group = ChatKey("telegram", "-100", is_group=True)
    assert "private chat" in notice(await say(assistant, "/users", ADMIN, chat=group)).text


async def test_a_daily_token_budget_stops_the_user_until_the_next_utc_day(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    openai_server.usage = Usage(prompt_tokens=60, completion_tokens=50)
    clock = Clock(utc("2026-11-19 22:00:00"))
    assistant = await make_assistant(MemoryStore(), clock=clock, FERRY_ADMINS=ADMIN)
    await say(assistant, "hi", ALICE)  # 110 tokens before the budget
    shown = notice(await say(assistant, f"/budget {ALICE} day 200 tokens", ADMIN)).text
    assert "200 tokens a day" in shown

    assert final(await say(assistant, "second", ALICE)).text == "You said: second"  # 220 now
    refused = notice(await say(assistant, "third", ALICE))
    assert refused.is_error
    assert refused.text == (
        "You've used your budget for today (200 tokens). It resets at 2026-11-20 00:00 UTC."
    )
    assert len(openai_server.chat_requests) == 2  # the model was not asked
    assert notice(await say(assistant, "/retry", ALICE)).text == refused.text  # nor by /retry
    assert len(openai_server.chat_requests) == 2
    assert final(await say(assistant, "something", BOB)).text  # others are not limited

    clock.now = utc("2026-11-20 00:00:01")
    assert final(await say(assistant, "third", ALICE)).text == "You said: third"

    # In Indonesian, and the budget can be lifted.
    await say(assistant, "/lang id", ALICE)
    await say(assistant, "again", ALICE)
    assert notice(await say(assistant, "lagi", ALICE)).text == (
        "Batas pemakaian Anda untuk hari ini (200 token) sudah habis. Batas ini diatur ulang pada 2026-11-21 00:00 UTC."
    )
    assert "no limit" in notice(await say(assistant, f"/budget {ALICE} day off", ADMIN)).text
    assert isinstance((await say(assistant, "lagi", ALICE))[-1], FinalText)


async def test_a_monthly_money_budget_resets_on_the_first_of_the_next_month(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    # gpt-4o-mini costs $0.15 per million prompt tokens: each answer costs $0.15.
    openai_server.usage = Usage(prompt_tokens=1_000_000, completion_tokens=0)
    clock = Clock(utc("2026-11-29 12:00:00"))
    assistant = await make_assistant(MemoryStore(), clock=clock, FERRY_ADMINS=ADMIN)
    await say(assistant, f"/budget {ALICE} month 0.25 usd", ADMIN)  # unknown user yet
    await say(assistant, "hi", ALICE)
    assert "$0.25 a month" in notice(await say(assistant, f"/budget {ALICE} month 0.25 usd", ADMIN)).text
    await say(assistant, "one", ALICE)  # $0.30 this month now
    clock.now = utc("2026-11-30 12:00:00")
    over = notice(await say(assistant, "two", ALICE)).text
    assert over == "You've used your budget for this month ($0.25). It resets at 2026-12-01 00:00 UTC."
    clock.now = utc("2026-12-01 00:00:00")
    assert final(await say(assistant, "two", ALICE)).text == "You said: two"


async def test_the_global_budget_stops_everyone_and_admins_hear_once_at_80_percent(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    openai_server.usage = Usage(prompt_tokens=1_000_000, completion_tokens=0)  # $0.15 an answer
    clock = Clock(utc("2026-11-10 09:00:00"))
    assistant = await make_assistant(MemoryStore(), clock=clock, FERRY_ADMINS=ADMIN)
    assert "everyone together: $1.00 a month" in notice(
        await say(assistant, "/budget global month 1 usd", ADMIN)
    ).text

    alerts: list[AdminAlert] = []
    for i in range(5):  # $0.75
        alerts += [e for e in await say(assistant, f"q{i}", ALICE if i % 2 else BOB) if isinstance(e, AdminAlert)]
    assert alerts == []
    events = await say(assistant, "q5", ALICE)  # $0.90: past 80 %
    alerts = [e for e in events if isinstance(e, AdminAlert)]
    assert len(alerts) == 1 and alerts[0].to == (ADMIN,)
    assert "90% of this month's budget ($0.90 of $1.00)" in alerts[0].text
    assert "2026-12-01 00:00 UTC" in alerts[0].text
    events = await say(assistant, "q6", BOB)  # $1.05: over, but no second alert
    assert not [e for e in events if isinstance(e, AdminAlert)]

    refused = notice(await say(assistant, "q7", ALICE)).text
    assert refused == "This assistant's budget ($1.00) is used up for now. It resets at 2026-12-01 00:00 UTC."
    assert "used up" in notice(await say(assistant, "me too", ADMIN)).text

    clock.now = utc("2026-12-03 09:00:00")  # a new month: a new alert when it passes 80 % again
    for i in range(5):
        await say(assistant, f"d{i}", BOB)
        assert await outbox.collect(assistant.store, "telegram", clock) == []
    # Bob is on Signal: the Signal process leaves the alert for the Telegram admin.
    await say(assistant, "d5", BOB)
    assert [a.to for a in await outbox.collect(assistant.store, "telegram", clock)] == [(ADMIN,)]
    assert "no limit" in notice(await say(assistant, "/budget global off", ADMIN)).text


async def test_usage_shows_today_and_this_month_per_model_and_what_is_left(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    openai_server.usage = Usage(prompt_tokens=100, completion_tokens=20)
    clock = Clock(utc("2026-11-18 10:00:00"))
    assistant = await make_assistant(
        MemoryStore(), clock=clock, FERRY_ADMINS=ADMIN, FERRY_MODELS="gpt-4o", FERRY_LANG="en"
    )
    await say(assistant, "yesterday", ALICE, sender_name="Alice")
    clock.now = utc("2026-11-19 10:00:00")
    await say(assistant, "today", ALICE)
    await say(assistant, "/model gpt-4o", ALICE)
    await say(assistant, "today again", ALICE)
    assert "No budget limit is set for you." in notice(await say(assistant, "/usage", ALICE)).text

    await say(assistant, f"/budget {ALICE} day 1000 tokens", ADMIN)
    await say(assistant, f"/budget {ALICE} month 1 usd", ADMIN)
    text = notice(await say(assistant, "/usage", ALICE)).text
    # 120 tokens an answer: gpt-4o costs $0.00045 for it, gpt-4o-mini $0.000027 (config/models.toml).
    # Today: one answer with each model; this month also yesterday's.
    assert text.splitlines() == [
        "Usage of Alice:",
        "",
        "*Today:* 240 tokens · $0.0005",
        "  • gpt-4o: 120 tokens · $0.0004",
        "  • gpt-4o-mini: 120 tokens · <$0.0001",
        "  Left: 760 tokens of 1,000 tokens (resets at 2026-11-20 00:00 UTC)",
        "",
        "*This month:* 360 tokens · $0.0005",
        "  • gpt-4o: 120 tokens · $0.0004",
        "  • gpt-4o-mini: 240 tokens · $0.0001",
        "  Left: $0.9995 of $1.00 (resets at 2026-12-01 00:00 UTC)",
        "",
        "*This conversation* («yesterday»): 360 tokens · $0.0005",  # summed per conversation too
    ]
    # An admin can look at someone else's (without the conversation line, which is the admin's own).
    assert notice(await say(assistant, f"/usage {ALICE}", ADMIN)).text == text.rsplit("\n\n", 1)[0]


async def test_an_admin_linked_across_messengers_is_admin_on_both(make_assistant: MakeAssistant) -> None:
    assistant = await make_assistant(MemoryStore(), clock=Clock(T0), FERRY_ADMINS=ADMIN)
    assert notice(await say(assistant, "/users", BOB)).text == "Only an admin can do that."
    code = link_code_of(notice(await say(assistant, "/link", ADMIN)).text)
    await say(assistant, f"/link {code}", BOB)
    assert notice(await say(assistant, "/users", BOB)).text.startswith("Users (1):")
    assert "no limit" in notice(await say(assistant, "/budget global off", BOB)).text


def link_code_of(text: str) -> str:
    match = CODE.search(text)
    assert match
    return match.group(1)
