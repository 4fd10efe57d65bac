"""What the real Telegram does that the adapter must follow (issue 12, points 5, 7, 8 and 10).

Each test runs the real python-telegram-bot against the fake Bot API with one of Telegram's
rules switched on (``tests/fakes/telegram_rules.py`` cites the upstream documentation).
"""

from __future__ import annotations

import asyncio
from typing import Any

from bots.telegram.process import Pacing, build_application, polling
from tests.bots.test_telegram_bot import GROUP, Recording, ai, assistant, tg  # noqa: F401 (fixtures)
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.fakes.telegram_server import FakeTelegram, utf16_len

FAST = Pacing(draft_interval=0.05, edit_interval=0.1, typing_interval=0.5)


def app_with(tg: FakeTelegram, assistant: Any, pacing: Pacing = FAST) -> Any:  # noqa: F811
    return build_application(assistant, tg.token, tg.root, pacing=pacing)


def refused(tg: FakeTelegram) -> list[str]:  # noqa: F811
    return [c.method for c in tg.calls if c.status == 429]


async def all_answered(tg: FakeTelegram, assistant: Any, people: list[int], global_rate: float) -> None:  # noqa: F811
    """Each of ``people`` says hello at once; returns once every one has the echo's answer."""
    pacing = Pacing(draft_interval=0.05, edit_interval=0.1, typing_interval=0.5, global_rate=global_rate)
    async with polling(app_with(tg, assistant, pacing), poll_timeout=1):
        for person in people:
            tg.push_text(person, f"hello from {person}")
        await tg.wait_until(lambda: all(tg.log(p).texts for p in people), within=30)
    assert all(tg.log(p).texts == [f"You said: hello from {p}"] for p in people)


# --- 5. a group becomes a supergroup --------------------------------------------------------------


async def test_an_upgraded_group_keeps_its_history_and_gets_the_answer_in_flight(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Recording  # noqa: F811
) -> None:
    old = -4001
    tg.basic_group(old)
    ai.enqueue(Reply("Noted: the boat leaves at nine."))
    ai.enqueue(Reply("A slow answer that outlives the old group id.", chunk_size=6, chunk_delay=0.1))
    ai.enqueue(Reply("At nine."))
    async with polling(app_with(tg, assistant), poll_timeout=1):
        tg.push_group_text(old, 7, "remember: the boat leaves at nine", mention=True)
        await tg.wait_until(lambda: tg.log(old).texts == ["Noted: the boat leaves at nine."])
        tg.push_group_text(old, 7, "tell me something slowly", mention=True)
        await tg.wait_until(lambda: len(tg.log(old).messages) == 2)  # its placeholder is up
        new = tg.migrate(old, 7)
        await tg.wait_until(lambda: "A slow answer that outlives the old group id." in tg.log(new).texts)
        tg.push_group_text(new, 7, "when does the boat leave?", mention=True)
        await tg.wait_until(lambda: "At nine." in tg.log(new).texts)
    context = " ".join(str(m["content"]) for m in ai.requests[2].messages)
    assert "the boat leaves at nine" in context, "the group's history followed it to the new id"
    store = assistant.inner.store
    assert await store.list_conversations(f"group:telegram:{old}") == []
    assert len(await store.list_conversations(f"group:telegram:{new}")) == 1


# --- 7. group pacing and the global limit ---------------------------------------------------------


async def test_answers_in_one_group_share_its_pace_and_stay_under_the_group_limit(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Recording  # noqa: F811
) -> None:
    tg.limits.enable(scale=0.1)  # 20 messages per 6 s per group: Telegram's ratio, ten times faster
    topics = [11, 12, 13, 14]  # one answer at a time per chat; forum topics answer side by side
    answers = [f"Topic {t}: " + " ".join(f"w{i}" for i in range(30)) for t in topics]
    for answer in answers:
        ai.enqueue(Reply(answer, chunk_size=4, chunk_delay=0.1))
    pacing = Pacing(draft_interval=0.05, edit_interval=0.5, typing_interval=0.5)
    async with polling(app_with(tg, assistant, pacing), poll_timeout=1):
        for topic in topics:
            tg.push_group_text(GROUP, 7, f"question in {topic}", mention=True, message_thread_id=topic)
        await tg.wait_until(lambda: sorted(tg.log(GROUP).texts) == sorted(answers), within=30)
    assert refused(tg) == [], "Telegram refused edits: the answers paced the group independently"
    assert Pacing().edit_interval >= 3.0  # about 20 edits a minute per group


async def test_final_sends_stay_under_the_global_limit(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Recording  # noqa: F811
) -> None:
    tg.limits.overall = (5, 1.0)  # Telegram's 30 a second, scaled down
    await all_answered(tg, assistant, list(range(501, 513)), global_rate=4.0)
    assert refused(tg) == []


async def test_a_message_slow_on_the_way_in_still_counts_toward_the_global_limit(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Recording  # noqa: F811
) -> None:
    # Telegram counts a message when it arrives, which for a slow request is long after it was
    # sent: one sent a second after it may arrive within the same second (bots/telegram/pacing.py).
    tg.limits.overall = (2, 1.0)
    tg.lag("sendMessage", 1.2)  # the first final arrives after a second and more in flight
    await all_answered(tg, assistant, list(range(601, 605)), global_rate=2.0)
    assert refused(tg) == []


async def test_an_answer_whose_message_waits_for_the_global_limit_is_shown_as_a_draft_meanwhile(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Recording  # noqa: F811
) -> None:
    """A fast answer is normally shown once, as its message (Pacing.settle); when that message must
    wait for Telegram's global limit, the person reads the answer as a draft while it waits."""
    people = list(range(701, 707))
    await all_answered(tg, assistant, people, global_rate=1.0)  # one new message a second
    waited = [p for p in people if any(d.text == f"You said: hello from {p}" for d in tg.log(p).drafts)]
    assert len(waited) >= 3, "the answers queued behind the limit were readable as drafts"
    first = int(tg.calls_of("sendMessage")[0].params["chat_id"])
    assert not [d for d in tg.log(first).drafts if d.text], "the first, sent at once, needed no draft"


# --- 8. drafts lapse after 30 s -------------------------------------------------------------------


async def test_a_draft_shows_thinking_at_once_and_never_lapses_during_a_pause(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Recording  # noqa: F811
) -> None:
    tg.drafts.lifetime = 0.5  # Telegram's 30 s, scaled down
    answer = "First part. Then a long pause. Then the rest."
    ai.enqueue(Reply(answer, chunk_size=16, chunk_delay=0.9))
    pacing = Pacing(draft_interval=0.05, edit_interval=0.1, typing_interval=0.5, draft_refresh=0.2)
    async with polling(app_with(tg, assistant, pacing), poll_timeout=1):
        tg.push_text(42, "think hard")
        await tg.wait_until(lambda: tg.log(42).texts == [answer], within=15)
    assert tg.drafts.lapses.get(42, 0) == 0, "the draft vanished while the model paused"
    drafts = tg.log(42).drafts
    assert drafts[0].text == "", "the person sees Telegram's 'thinking' draft before the first word"


# --- 10. privacy mode -----------------------------------------------------------------------------


def mention_inside(tg: FakeTelegram, user_id: int, before: str, after: str) -> None:  # noqa: F811
    handle = "@test_bot"
    text = f"{before} {handle} {after}"
    offset = utf16_len(before) + 1
    entity = {"type": "mention", "offset": offset, "length": len(handle)}
    tg.push_text(user_id, text, chat_id=GROUP, entities=[entity])


async def test_privacy_mode_on_delivers_only_what_is_meant_for_the_bot_and_all_of_it_is_answered(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Recording  # noqa: F811
) -> None:
    tg.privacy_mode = True
    async with polling(app_with(tg, assistant), poll_timeout=1):
        tg.push_group_text(GROUP, 7, "chatting among ourselves")
        tg.push_group_text(GROUP, 7, "/help@other_bot")
        tg.push_group_text(GROUP, 7, "first", mention=True)
        await tg.wait_until(lambda: len(tg.log(GROUP).texts) == 1 and tg.log(GROUP).texts[0].startswith("You"))
        answer = tg.log(GROUP).messages[0]
        mention_inside(tg, 8, "what do you think", "about boats?")
        await tg.wait_until(lambda: len(tg.log(GROUP).texts) == 2 and tg.log(GROUP).texts[1].startswith("You"))
        tg.push_group_text(GROUP, 9, "and a reply without a mention", reply_to_bot=answer)
        await tg.wait_until(lambda: len(tg.log(GROUP).texts) == 3 and tg.log(GROUP).texts[2].startswith("You"))
    assert [m.addressed for m in assistant.seen] == [True, True, True]
    assert len(tg.withheld) == 2, "Telegram keeps the rest of the group's talk from the bot"
    assert "what do you think about boats?" in tg.log(GROUP).texts[1]


async def test_privacy_mode_off_delivers_everything_and_only_mentions_are_answered(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Recording  # noqa: F811
) -> None:
    tg.privacy_mode = False
    async with polling(app_with(tg, assistant), poll_timeout=1):
        tg.push_group_text(GROUP, 7, "chatting among ourselves")
        mention_inside(tg, 8, "what do you think", "about boats?")
        await tg.wait_until(lambda: len(tg.log(GROUP).texts) == 1 and tg.log(GROUP).texts[0].startswith("You"))
        await asyncio.sleep(0)
    assert [m.addressed for m in assistant.seen] == [False, True]
    assert not tg.withheld
    assert "boats" in tg.log(GROUP).texts[0]
