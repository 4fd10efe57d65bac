"""The conversation core end to end: the real openai client against the fake provider on loopback."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from core.assistant import Assistant
from core.conversations import short_title
from core.store.base import StoreError
from core.store.memory import MemoryStore
from core.text import clean_text
from core.types import (
    AdminAlert,
    Attachment,
    ChatKey,
    FinalText,
    Identity,
    Incoming,
    Notice,
    PartialAnswer,
    ReplyEvent,
    StreamStart,
)
from tests.conftest import MakeAssistant
from tests.fakes.openai_server import Error, FakeOpenAI, Reply


def incoming(text: str, sender: str = "telegram:1", chat: ChatKey | None = None, **kw: Any) -> Incoming:
    ident = Identity.parse(sender)
    return Incoming(
        sender=ident,
        chat=chat or ChatKey(ident.platform, ident.id),
        text=text,
        sender_name=kw.pop("sender_name", None),
        **kw,
    )


async def say(assistant: Assistant, text: str, sender: str = "telegram:1", **kw: Any) -> list[ReplyEvent]:
    return [event async for event in assistant.handle(incoming(text, sender, **kw))]


def texts(events: list[ReplyEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, Notice | FinalText)]


def final(events: list[ReplyEvent]) -> FinalText:
    finals = [e for e in events if isinstance(e, FinalText)]
    assert len(finals) == 1, events
    return finals[0]


async def conversation_of(assistant: Assistant, sender: str = "telegram:1") -> list[tuple[str, str, str]]:
    user = await assistant.store.find_user(sender)
    assert user is not None
    convs = await assistant.store.list_conversations(f"user:{user.id}", 1)
    messages = await assistant.store.get_messages(convs[0].id)
    return [(m.role, m.content, m.status) for m in messages]


async def test_answer_streams_then_is_stored_with_usage(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    assistant = await make_assistant()
    openai_server.enqueue(Reply("Hello there, how can I help you today?", chunk_size=5))
    events = await say(assistant, "hi")

    assert isinstance(events[0], StreamStart)
    deltas = [e.text for e in events if isinstance(e, PartialAnswer)]
    assert len(deltas) > 3
    assert all(b.startswith(a) for a, b in itertools.pairwise(deltas))
    assert final(events).text == "Hello there, how can I help you today?"
    assert await conversation_of(assistant) == [
        ("user", "hi", "ok"),
        ("assistant", "Hello there, how can I help you today?", "ok"),
    ]
    user = await assistant.store.find_user("telegram:1")
    assert user is not None
    totals = await assistant.store.usage_totals(user.id, 0)
    assert totals.prompt_tokens > 0 and totals.completion_tokens > 0
    assert totals.cost > 0  # gpt-4o-mini has a price in the catalogue
    sent = openai_server.chat_requests[-1].json
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


async def test_the_model_sees_the_whole_conversation_in_order(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    assistant = await make_assistant()
    await say(assistant, "my name is Dana")
    await say(assistant, "what is my name?")
    roles = [(m["role"], m["content"]) for m in openai_server.chat_requests[-1].messages]
    assert roles[0][0] == "system"
    assert roles[1:] == [
        ("user", "my name is Dana"),
        ("assistant", "You said: my name is Dana"),
        ("user", "what is my name?"),
    ]


async def test_messages_of_one_chat_are_answered_in_arrival_order(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    assistant = await make_assistant()
    openai_server.enqueue(Reply("first answer", chunk_size=2, chunk_delay=0.02))

    async def run(text: str) -> list[ReplyEvent]:
        return await say(assistant, text)

    first, second = await asyncio.gather(run("one"), run("two"))
    assert final(first).text == "first answer"
    # The second question was sent to the model only after the first answer was stored.
    second_context = [m["content"] for m in openai_server.chat_requests[-1].messages[1:]]
    assert second_context == ["one", "first answer", "two"]
    assert final(second).text == "You said: two"


async def test_different_chats_do_not_wait_for_each_other(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    assistant = await make_assistant()
    openai_server.enqueue(Reply("stuck forever", hang_after=1))
    slow = asyncio.create_task(say(assistant, "slow one", sender="telegram:1"))
    await openai_server.wait_for_requests(1)
    fast = await asyncio.wait_for(say(assistant, "quick one", sender="telegram:2"), 10)
    assert final(fast).text == "You said: quick one"
    assert not slow.done()
    await say(assistant, "/cancel", sender="telegram:1")
    assert final(await slow).interrupted


async def test_cancel_keeps_what_was_generated_and_marks_it(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    assistant = await make_assistant()
    openai_server.enqueue(Reply("partial words then nothing", chunk_size=8, hang_after=2))
    task = asyncio.create_task(say(assistant, "tell me a long story"))
    await openai_server.wait_for_requests(1)
    for _ in range(100):
        await asyncio.sleep(0.02)
        if assistant._cancels:
            break
    assert await say(assistant, "/cancel") == []
    events = await asyncio.wait_for(task, 10)
    answer = final(events)
    assert answer.interrupted
    assert answer.text.startswith("partial ")
    assert "(cut off)" in answer.text
    stored = await conversation_of(assistant)
    assert stored[-1][0] == "assistant" and stored[-1][2] == "cancelled"
    assert texts(await say(assistant, "/cancel")) == ["There is nothing to stop."]


async def test_retry_replaces_the_last_answer(make_assistant: MakeAssistant, openai_server: FakeOpenAI) -> None:
    assistant = await make_assistant()
    openai_server.enqueue(Reply("a bad answer"))
    await say(assistant, "write a haiku")
    openai_server.enqueue(Reply("a better answer"))
    events = await say(assistant, "/retry")
    assert final(events).text == "a better answer"
    assert await conversation_of(assistant) == [
        ("user", "write a haiku", "ok"),
        ("assistant", "a better answer", "ok"),
    ]
    # The retried request carried the question once, without the replaced answer.
    assert [m["content"] for m in openai_server.chat_requests[-1].messages[1:]] == ["write a haiku"]


async def test_new_and_chats_switch_between_titled_conversations(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    assistant = await make_assistant()
    await say(assistant, "Plan a trip to Yogyakarta in March for two people")
    assert texts(await say(assistant, "/new")) == ["Started a new conversation. Your earlier ones are in /chats."]
    await say(assistant, "Recipe for rendang")
    listing = await say(assistant, "/chats")
    notice = listing[0]
    assert isinstance(notice, Notice)
    labels = [row[0].label for row in notice.buttons]
    assert labels[0].startswith("Recipe for rendang")
    assert labels[1].startswith("Plan a trip to Yogyakarta in March")
    trip = notice.buttons[1][0].data
    switched = await say(assistant, "", callback=trip)
    assert "Plan a trip" in texts(switched)[0]
    await say(assistant, "and what should we pack?")
    context = [m["content"] for m in openai_server.chat_requests[-1].messages[1:]]
    assert context[0] == "Plan a trip to Yogyakarta in March for two people"
    assert "Recipe for rendang" not in context


async def test_a_failed_model_gives_one_sentence_in_the_users_language(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    assistant = await make_assistant()
    openai_server.enqueue(Error.insufficient_quota())
    events = await say(assistant, "halo", language_code="id")
    assert texts(events) == [
        "Penyedia AI mengatakan kredit asisten ini sudah habis. Admin perlu mengisinya kembali; "
        "silakan coba lagi nanti."
    ]
    assert isinstance(events[-1], Notice) and events[-1].is_error
    # The question is kept, so /retry can answer it once the provider is back.
    assert await conversation_of(assistant) == [("user", "halo", "ok")]
    assert final(await say(assistant, "/retry")).text == "You said: halo"

    for error, expected in [
        (Error.rate_limited(retry_after_ms=1), "busy right now"),
        (Error.server_error(503), "isn't answering"),
        (Error.context_length_exceeded(), "too long for the model"),
        (Error.model_not_found("gpt-4o-mini"), "gpt-4o-mini isn't available"),
    ]:
        openai_server.enqueue(error)
        if error.code == "context_length_exceeded":
            openai_server.enqueue(error)  # "too large" is tried once more, trimmed harder (issue 13)
        assert expected in texts(await say(assistant, "again"))[0]


async def test_a_stream_that_breaks_halfway_keeps_the_partial_answer(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    assistant = await make_assistant()
    openai_server.enqueue(Reply("The first part of the answer and more", chunk_size=6, break_after=2))
    answer = final(await say(assistant, "explain"))
    assert answer.interrupted
    assert answer.text.startswith("The first pa")
    assert "cut off: the connection to the AI broke" in answer.text
    stored = await conversation_of(assistant)
    assert stored[-1][2] == "interrupted"


async def test_bad_input_is_declined_clearly(make_assistant: MakeAssistant, openai_server: FakeOpenAI) -> None:
    assistant = await make_assistant()
    assert texts(await say(assistant, "   ")) == ["Your message is empty. Write something and I'll answer."]
    huge = "x" * 100_000
    assert texts(await say(assistant, huge)) == [
        "Your message is too long: 100,000 characters, the limit is 16,000. "
        "Please shorten it or split it into parts."
    ]
    assert texts(await say(assistant, "/frobnicate now")) == [
        "I don't know the command /frobnicate. Type /help to see what I can do."
    ]
    voice = await say(assistant, "", attachments=(Attachment(kind="voice"),))
    assert texts(voice) == ["I can't read voice messages yet. Please write your message as text."]
    await say(assistant, "a\x00b\x1b[31mc\u0007")
    assert openai_server.chat_requests[-1].messages[-1]["content"] == "ab[31mc"
    assert openai_server.request_count == 1  # nothing else reached the model


async def test_help_model_instructions_and_language(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    assistant = await make_assistant(FERRY_MODELS="gpt-4o-mini,gpt-4o,llama3.1:8b")
    help_text = texts(await say(assistant, "/help"))[0]
    for command in ("/new", "/chats", "/retry", "/cancel", "/model", "/instructions", "/lang"):
        assert command in help_text

    choose = (await say(assistant, "/model"))[0]
    assert isinstance(choose, Notice)
    assert [row[0].data for row in choose.buttons] == ["model:gpt-4o-mini", "model:gpt-4o", "model:llama3.1:8b"]
    assert texts(await say(assistant, "", callback="model:gpt-4o")) == ["From now on I'll answer with gpt-4o."]
    assert "not offered" in texts(await say(assistant, "/model gpt-2"))[0]

    await say(assistant, "/instructions Always answer in rhymes.")
    assert "Always answer in rhymes." in texts(await say(assistant, "/instructions"))[0]
    await say(assistant, "hello")
    request = openai_server.chat_requests[-1].json
    assert request["model"] == "gpt-4o"
    assert "Always answer in rhymes." in request["messages"][0]["content"]
    await say(assistant, "/instructions clear")
    assert texts(await say(assistant, "/instructions"))[0].startswith("You have no custom instructions")

    assert texts(await say(assistant, "/lang id")) == ["Mulai sekarang saya berbicara dalam Bahasa Indonesia."]
    assert texts(await say(assistant, "/new"))[0].startswith("Percakapan baru dimulai")


async def test_the_messenger_language_is_used_until_lang_overrides_it(make_assistant: MakeAssistant) -> None:
    assistant = await make_assistant()
    assert texts(await say(assistant, "/new", language_code="id-ID"))[0].startswith("Percakapan baru")
    await say(assistant, "/lang en", language_code="id-ID")
    assert texts(await say(assistant, "/new", language_code="id-ID"))[0].startswith("Started a new")


async def test_approval_mode_asks_the_admin_who_approves_with_a_button(make_assistant: MakeAssistant) -> None:
    assistant = await make_assistant(FERRY_ACCESS="approval", FERRY_ADMINS="telegram:99")
    events = await say(assistant, "hello?", sender="telegram:5", sender_name="Sari")
    assert texts(events) == [
        "Hi! This assistant is private. I have asked the admin to let you in; I'll tell you when they answer."
    ]
    alert = events[-1]
    assert isinstance(alert, AdminAlert) and alert.to == ("telegram:99",)
    assert "Sari" in alert.text
    approve, deny = alert.buttons[0]
    assert (approve.label, deny.label) == ("Approve", "Deny")
    assert texts(await say(assistant, "again", sender="telegram:5")) == [
        "Your request is still waiting for the admin's answer."
    ]
    # Only admins may decide.
    assert texts(await say(assistant, "", sender="telegram:6", callback=approve.data))[0].startswith(
        "Hi! This assistant is private"
    )
    decided = await say(assistant, "", sender="telegram:99", callback=approve.data)
    assert texts(decided) == ["Access approved for Sari."]
    told = [e for e in decided if isinstance(e, AdminAlert)]
    assert told[0].to == ("telegram:5",) and "let you in" in told[0].text
    assert final(await say(assistant, "now?", sender="telegram:5")).text == "You said: now?"

    await say(assistant, "hi", sender="telegram:7", sender_name="Budi")
    assert texts(await say(assistant, "/deny telegram:7", sender="telegram:99")) == ["Access denied for Budi."]
    assert texts(await say(assistant, "please", sender="telegram:7")) == [
        "Sorry, the admin has not given you access to this assistant."
    ]


async def test_without_admins_a_claim_code_makes_the_first_admin(make_assistant: MakeAssistant) -> None:
    store = MemoryStore()
    assistant = await make_assistant(store=store, FERRY_ACCESS="approval")
    code = await store.get_meta("claim_code")
    assert isinstance(code, str) and len(code) == 9
    assert texts(await say(assistant, "/claim WRONG-CODE", sender="signal:abc")) == ["That claim code is not right."]
    assert texts(await say(assistant, f"/claim {code.lower()}", sender="signal:abc")) == [
        "You are now the admin of this assistant."
    ]
    again = await say(assistant, f"/claim {code}", sender="signal:def")
    assert texts(again) == ["This assistant already has an admin."]
    # The new admin now receives access requests: on Signal, from a request made on Telegram.
    events = await say(assistant, "hi", sender="telegram:3")
    assert not [e for e in events if isinstance(e, AdminAlert)]
    alerts = [a async for a in _first(assistant.alerts("signal", interval=0.01))]
    assert alerts[0].to == ("signal:abc",) and "telegram:3" in alerts[0].text
    assert alerts[0].buttons[0][0].data.startswith("acc:approve:")


async def test_a_group_answers_only_when_addressed_and_shares_one_conversation(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    assistant = await make_assistant()
    group = ChatKey("telegram", "-100", topic="7", is_group=True)
    assert await say(assistant, "chatting among ourselves", chat=group, addressed=False) == []
    await say(assistant, "@bot what is 2+2?", sender="telegram:1", chat=group, sender_name="Ana")
    await say(assistant, "@bot and times 3?", sender="telegram:2", chat=group, sender_name="Ben")
    context = [m["content"] for m in openai_server.chat_requests[-1].messages[1:]]
    assert context == ["Ana: @bot what is 2+2?", "You said: Ana: @bot what is 2+2?", "Ben: @bot and times 3?"]
    # A member's private chat does not see the group's history.
    await say(assistant, "private question", sender="telegram:1")
    assert [m["content"] for m in openai_server.chat_requests[-1].messages[1:]] == ["private question"]


async def test_a_quoted_answer_is_carried_into_the_context(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    assistant = await make_assistant()
    await say(assistant, "shorter please", quoted_text="A long earlier answer\nover two lines")
    assert openai_server.chat_requests[-1].messages[-1]["content"] == (
        "> A long earlier answer\n> over two lines\n\nshorter please"
    )


class _FailingStore(MemoryStore):
    async def append_messages(self, messages: Any) -> Any:
        raise StoreError("disk full (No space left on device)")


class _NoNewConversations(MemoryStore):
    async def put_conversation(self, conv: Any) -> None:
        raise StoreError("disk full (No space left on device)")


# The new conversation is written beside the model request, just before the message: refused all the same.
@pytest.mark.parametrize("store", [_FailingStore, _NoNewConversations])
async def test_a_full_disk_is_told_to_the_user_and_nothing_reaches_the_model(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI, store: type[MemoryStore]
) -> None:
    assistant = await make_assistant(store=store())
    events = await say(assistant, "hello")
    assert texts(events) == [
        "I couldn't save your message just now, so I didn't answer. Please try again later."
    ]
    assert openai_server.request_count == 0


async def test_per_user_rate_limit_declines_with_the_limit(make_assistant: MakeAssistant) -> None:
    now = [1000.0]
    assistant = await make_assistant(clock=lambda: now[0], FERRY_RATE_PER_MINUTE="2")
    await say(assistant, "one")
    await say(assistant, "two")
    assert "limit 2 a minute" in texts(await say(assistant, "three"))[0]
    now[0] += 61
    assert final(await say(assistant, "four")).text == "You said: four"


async def _first(alerts: AsyncIterator[AdminAlert]) -> AsyncIterator[AdminAlert]:
    async for alert in alerts:
        yield alert
        return


def test_text_helpers() -> None:
    assert clean_text("  a\r\nb\x00\t c \x7f ") == "a\nb\t c"
    assert short_title("Plan a trip to Yogyakarta in March for two people and a dog") == (
        "Plan a trip to Yogyakarta in March for two…"
    )
    assert short_title("short") == "short"


async def test_an_answer_stopped_by_the_token_limit_says_so(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    assistant = await make_assistant()
    openai_server.enqueue(Reply("The first three chapters are", finish_reason="length"))
    answer = final(await say(assistant, "write a novel"))
    assert answer.interrupted
    assert answer.text == (
        "The first three chapters are\n\n"
        "_(cut off: the answer reached its length limit; write «continue» for the rest)_"
    )
    # Stored as the model wrote it, so the next turn's context carries no marker.
    assert (await conversation_of(assistant))[-1] == ("assistant", "The first three chapters are", "ok")
