"""Linking: one person on Telegram and Signal with one history, and the limits on link codes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from core import outbox
from core.accounts import CODES_KEY, TRIES_KEY
from core.assistant import Assistant
from core.store.base import Store
from core.store.memory import MemoryStore
from core.store.tinydb_store import TinyDBStore
from core.types import AdminAlert, ChatKey, Notice, ReplyEvent
from tests.conftest import MakeAssistant
from tests.core.test_assistant import final, say, texts
from tests.fakes.openai_server import FakeOpenAI

T0 = 1_795_000_000.0  # 2026-11-19 (UTC)
CODE = re.compile(r"\b([A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4})\b")
TG = "telegram:4242424201"  # long enough that no random hex id in the store contains it
SG = "signal:8c2d1f0e-5b7a-4c1e-9d3f-2a6b8e4c7d10"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def notice(events: list[ReplyEvent]) -> Notice:
    notices = [e for e in events if isinstance(e, Notice)]
    assert len(notices) == 1, events
    return notices[0]


async def link_code(assistant: Assistant, sender: str = TG) -> str:
    match = CODE.search(notice(await say(assistant, "/link", sender)).text)
    assert match, "no code shown"
    return match.group(1)


@pytest.fixture(params=["memory", "tinydb"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A function giving stores on one data folder, as each bot process opens its own."""
    memory = MemoryStore()

    def make() -> Store:
        return memory if request.param == "memory" else TinyDBStore(tmp_path / "data")

    return make


async def test_link_on_telegram_then_continue_the_conversation_on_signal(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI, make_store: Any
) -> None:
    # Two assistants on one store folder stand for the Telegram and the Signal process.
    clock = Clock()
    telegram = await make_assistant(make_store(), clock=clock)
    signal = await make_assistant(make_store(), clock=clock)
    await say(telegram, "my name is Dana and I live in Bandung", TG, sender_name="Dana")
    clock.now += 60
    code = await link_code(telegram)
    clock.now += 60

    done = await say(signal, f"/link {code}", SG)
    assert "Linked" in notice(done).text
    assert not [e for e in done if isinstance(e, AdminAlert)]  # Signal cannot send on Telegram...
    alerts = await outbox.collect(telegram.store, "telegram", clock)  # ...the Telegram process does
    assert len(alerts) == 1 and alerts[0].to == (TG,) and SG in alerts[0].text
    assert await outbox.collect(telegram.store, "telegram", clock) == []  # delivered once

    chats = notice(await say(signal, "/chats", SG))
    assert "my name is Dana" in chats.text
    answer = await say(signal, "where do I live?", SG)
    assert final(answer).text == "You said: where do I live?"
    context = [m["content"] for m in openai_server.chat_requests[-1].messages[1:]]
    assert context == [
        "my name is Dana and I live in Bandung",
        "You said: my name is Dana and I live in Bandung",
        "where do I live?",
    ]
    # And back on Telegram the Signal turn is part of the same conversation.
    await say(telegram, "thanks", TG)
    assert "where do I live?" in [m["content"] for m in openai_server.chat_requests[-1].messages]
    store = telegram.store
    tg_user, sg_user = await store.find_user(TG), await store.find_user(SG)
    assert tg_user is not None and tg_user == sg_user
    assert set(tg_user.identities) == {TG, SG}
    assert len(await store.list_users()) == 1


async def test_linking_merges_conversations_settings_and_usage_and_loses_nothing(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    clock = Clock()
    assistant = await make_assistant(MemoryStore(), clock=clock, FERRY_MODELS="gpt-4o")
    await say(assistant, "telegram question", TG)
    await say(assistant, "/lang id", TG)
    clock.now += 10
    await say(assistant, "signal question", SG)
    await say(assistant, "/model gpt-4o", SG)
    await say(assistant, "/instructions Answer briefly.", SG)
    await say(assistant, "/lang en", SG)
    store = assistant.store
    before_tg, before_sg = await store.find_user(TG), await store.find_user(SG)
    assert before_tg and before_sg
    usage_before = sum([(await store.usage_totals(u.id, 0)).tokens for u in (before_tg, before_sg)])

    code = await link_code(assistant, TG)
    await say(assistant, f"/link {code}", SG)

    user = await store.find_user(SG)
    assert user is not None and user.id == before_tg.id  # the user who showed the code is kept
    assert user.lang == "id"  # the keeper's setting wins
    assert user.model == "gpt-4o" and user.instructions == "Answer briefly."  # unset ones are filled in
    assert await store.get_user(before_sg.id) is None
    titles = {c.title for c in await store.list_conversations(f"user:{user.id}")}
    assert titles == {"telegram question", "signal question"}
    assert await store.list_conversations(f"user:{before_sg.id}") == []
    assert (await store.usage_totals(user.id, 0)).tokens == usage_before
    # Both conversations are offered on Signal; switching to the Telegram one continues it.
    chats = notice(await say(assistant, "/chats", SG))
    tg_conv = next(b.data for row in chats.buttons for b in row if "telegram question" in b.label)
    await say(assistant, "", SG, callback=tg_conv)
    await say(assistant, "and more", SG)
    assert openai_server.chat_requests[-1].messages[1]["content"] == "telegram question"


async def test_unlink_splits_an_identity_off_with_a_fresh_start(make_assistant: MakeAssistant) -> None:
    assistant = await make_assistant(MemoryStore(), clock=Clock())
    await say(assistant, "shared history", TG)
    code = await link_code(assistant, TG)
    await say(assistant, f"/link {code}", SG)

    assert "isn't one of your" in notice(await say(assistant, "/unlink telegram:1", TG)).text
    choose = notice(await say(assistant, "/unlink", TG))
    assert [b.data for row in choose.buttons for b in row] == [f"unlink:{TG}", f"unlink:{SG}"]
    done = notice(await say(assistant, "", TG, callback=f"unlink:{SG}"))
    assert SG in done.text

    store = assistant.store
    tg_user, sg_user = await store.find_user(TG), await store.find_user(SG)
    assert tg_user and sg_user and tg_user.id != sg_user.id
    assert tg_user.identities == (TG,) and sg_user.identities == (SG,)
    assert sg_user.status == "approved"
    assert "shared history" in notice(await say(assistant, "/chats", TG)).text
    assert "no conversations" in notice(await say(assistant, "/chats", SG)).text
    assert "isn't linked" in notice(await say(assistant, "/unlink", SG)).text


async def test_an_identity_gets_five_wrong_tries_an_hour(make_assistant: MakeAssistant) -> None:
    clock = Clock()
    assistant = await make_assistant(MemoryStore(), clock=clock)
    code = await link_code(assistant, TG)
    for left in (4, 3, 2, 1, 0):
        wrong = notice(await say(assistant, "/link ABCD-EFGH" if code != "ABCD-EFGH" else "/link ABCD-EFGJ", SG))
        assert f"Tries left this hour: {left}" in wrong.text
    # The sixth try is refused even with the right code, and the code is not used up by it.
    refused = notice(await say(assistant, f"/link {code}", SG))
    assert "Too many wrong codes" in refused.text
    assert "60 minutes" in refused.text
    other = "signal:someone-else"
    assert "Linked" in notice(await say(assistant, f"/link {code}", other)).text

    clock.now += 3600
    code = await link_code(assistant, TG)
    assert "Linked" in notice(await say(assistant, f"/link {code}", SG)).text
    assert await assistant.store.get_meta(TRIES_KEY) is None or SG not in (await assistant.store.get_meta(TRIES_KEY))


async def test_expired_and_reused_codes_are_refused(make_assistant: MakeAssistant) -> None:
    clock = Clock()
    assistant = await make_assistant(MemoryStore(), clock=clock)
    code = await link_code(assistant, TG)
    clock.now += 601
    assert "wrong or has expired" in notice(await say(assistant, f"/link {code}", SG)).text

    code = await link_code(assistant, TG)
    clock.now += 599
    assert "Linked" in notice(await say(assistant, f"/link {code.lower().replace('-', ' ')}", SG)).text
    assert "wrong or has expired" in notice(await say(assistant, f"/link {code}", "signal:third")).text
    third = await assistant.store.find_user("signal:third")
    assert third is not None and third.identities == ("signal:third",)
    assert await assistant.store.get_meta(CODES_KEY) is None


async def test_a_new_code_replaces_the_old_one_and_the_own_code_is_kept(make_assistant: MakeAssistant) -> None:
    assistant = await make_assistant(MemoryStore(), clock=Clock())
    first = await link_code(assistant, TG)
    second = await link_code(assistant, TG)
    assert "for this chat" in notice(await say(assistant, f"/link {second}", TG)).text
    assert "wrong or has expired" in notice(await say(assistant, f"/link {first}", SG)).text
    assert "Linked" in notice(await say(assistant, f"/link {second}", SG)).text


async def test_link_is_refused_in_groups(make_assistant: MakeAssistant) -> None:
    assistant = await make_assistant(MemoryStore(), clock=Clock())
    group = ChatKey("telegram", "-100", is_group=True)
    events = await say(assistant, "/link", TG, chat=group)
    assert "private chat" in texts(events)[0]
    assert not CODE.search(texts(events)[0])


async def test_a_new_account_waiting_for_approval_can_link_to_an_approved_one(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    assistant = await make_assistant(FERRY_ACCESS="approval", FERRY_ADMINS="telegram:1")
    await say(assistant, "/approve " + TG, "telegram:1")  # unknown yet: nothing to approve
    first = await say(assistant, "hello", TG)
    assert any(isinstance(e, AdminAlert) for e in first)
    await say(assistant, f"/approve {TG}", "telegram:1")
    code = await link_code(assistant, TG)

    linked = await say(assistant, f"/link {code}", SG)
    assert not any(isinstance(e, AdminAlert) and "asks for access" in e.text for e in linked)
    assert final(await say(assistant, "now from Signal", SG)).text == "You said: now from Signal"
    # A stranger's wrong code is only a wrong code: no access, and the admin is asked as usual.
    wrong = await say(assistant, "/link AAAA-BBBB", "signal:stranger")
    assert "asked the admin" in texts(wrong)[-1]
    requests = await outbox.collect(assistant.store, "telegram", assistant.clock)  # for the Telegram admin
    assert [a.to for a in requests] == [(TG,), ("telegram:1",)]  # "you were linked", then the request
    assert "New access request" in requests[1].text
    assert "waiting for the admin" in texts(await say(assistant, "hi again", "signal:stranger"))[0]
