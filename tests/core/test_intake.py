"""Issue 11 in the core: a received message is recorded, answered once, and delivered once, across restarts.

A "restart" is closing one assistant without letting it finish and starting another on the same
data folder (TinyDB), as a crashed process leaves it; the memory store stands for a process that
lives on (its records outlive the first assistant in the same object).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.app import assemble
from core.assistant import Assistant
from core.context import CUT_OFF_NOTE, UNDELIVERED_NOTE
from core.intake import Receipt, event_to_dict, incoming_to_dict
from core.llm import OpenAIModelClient
from core.reply import Reply
from core.store.base import IntakeRecord, Store, StoreError
from core.store.memory import MemoryStore
from core.store.postgres import PostgresStore
from core.store.tinydb_store import TinyDBStore
from core.types import ChatKey, FinalText, Identity, Incoming, Notice, PartialAnswer, ReplyEvent
from tests.conftest import MakeAssistant, make_settings
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.openai_server import Reply as ModelReply
from tests.store.pg import PG_URL, pg_schema


def message(text: str, person: str = "1", platform: str = "telegram") -> Incoming:
    return Incoming(sender=Identity(platform, person), chat=ChatKey(platform, person), text=text, message_id="7")


async def read(reply: Reply, *, deliver: bool = True, ref: str = "m1") -> list[ReplyEvent]:
    """Read a reply as an adapter does: every event, then mark it delivered."""
    events = [event async for event in reply]
    if deliver:
        await reply.delivered(ref)
    await reply.aclose()
    return events


def finals(events: list[ReplyEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, FinalText)]


async def first(pending: AsyncIterator[Reply], within: float = 10) -> Reply:
    async with asyncio.timeout(within):
        return await anext(pending)


async def nothing_from(pending: AsyncIterator[Reply], within: float = 0.5) -> bool:
    try:
        async with asyncio.timeout(within):
            await anext(pending)
    except TimeoutError:
        return True
    return False


@pytest.fixture(params=["memory", "tinydb", "postgres"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A function giving the store a (re)started process opens: the same data every time."""
    memory = MemoryStore()

    with pg_schema() as schema:

        def make() -> Store:
            if request.param == "postgres":
                return PostgresStore(PG_URL, schema=schema)
            return memory if request.param == "memory" else TinyDBStore(tmp_path / "data")

        yield make


async def crash(assistant: Assistant) -> None:
    """Stop the assistant the way a killed process stops: nothing more is answered or delivered."""
    await assistant.close()


async def test_a_received_message_is_answered_and_delivered_once(
    make_assistant: MakeAssistant, store_factory: Any
) -> None:
    assistant = await make_assistant(store=store_factory())
    reply = await assistant.receive(message("hello"), "telegram:100")
    assert reply is not None
    assert reply.key == "telegram:100" and reply.incoming is not None and not reply.recovered
    assert finals(await read(reply)) == ["You said: hello"]
    assert await assistant.receive(message("hello"), "telegram:100") is None, "a key received before"
    await crash(assistant)
    again = await make_assistant(store=store_factory())
    assert await nothing_from(again.pending("telegram")), "a delivered answer is never handed over again"
    assert await again.receive(message("hello"), "telegram:100") is None, "nor answered again after a restart"


async def test_a_message_recorded_but_not_answered_is_answered_once_after_a_restart(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI, store_factory: Any
) -> None:
    openai_server.enqueue(ModelReply("never finished", hang_after=1))
    assistant = await make_assistant(store=store_factory())
    reply = await assistant.receive(message("are you there?"), "telegram:200", {"chat_id": 1})
    assert reply is not None  # recorded: the adapter acknowledges it upstream now
    await openai_server.wait_for_requests(1)
    await crash(assistant)

    again = await make_assistant(store=store_factory())
    pending = again.pending("telegram")
    recovered = await first(pending)
    assert recovered.recovered and recovered.key == "telegram:200" and recovered.route == {"chat_id": 1}
    assert recovered.incoming is not None and recovered.incoming.text == "are you there?"
    assert finals(await read(recovered)) == ["You said: are you there?"]
    assert await nothing_from(pending)
    user = await again.store.find_user("telegram:1")
    assert user is not None
    conv = (await again.store.list_conversations(f"user:{user.id}", 1))[0]
    said = [(m.role, m.content) for m in await again.store.get_messages(conv.id)]
    assert said == [("user", "are you there?"), ("assistant", "You said: are you there?")], "once each"


async def test_an_answer_stored_but_not_delivered_is_handed_over_with_its_stub(
    make_assistant: MakeAssistant, store_factory: Any
) -> None:
    assistant = await make_assistant(store=store_factory())
    reply = await assistant.receive(message("tell me", "+1", "signal"), "signal:+1:1700", {"to": "+1"})
    assert reply is not None
    events = [event async for event in reply]  # read, the stub shown, then the process dies
    await reply.shown("stub-1700")
    assert finals(events) == ["You said: tell me"]
    await crash(assistant)

    again = await make_assistant(store=store_factory())
    pending = again.pending("telegram")
    assert await nothing_from(pending, 0.2), "another messenger's answers are not handed over here"
    handed = await first(again.pending("signal"))
    assert handed.recovered and handed.previous_ref == "stub-1700" and handed.route == {"to": "+1"}
    assert finals(await read(handed, ref="stub-1700")) == ["You said: tell me"]
    third = await make_assistant(store=store_factory())
    assert await nothing_from(third.pending("signal")), "delivered once, never again"


async def test_later_messages_of_a_chat_wait_for_the_recovered_ones(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI, store_factory: Any
) -> None:
    openai_server.enqueue(ModelReply("stuck", hang_after=1))
    assistant = await make_assistant(store=store_factory())
    assert await assistant.receive(message("first"), "telegram:1") is not None
    assert await assistant.receive(message("second"), "telegram:2") is not None
    await openai_server.wait_for_requests(1)
    await crash(assistant)

    again = await make_assistant(store=store_factory())
    pending = again.pending("telegram")
    one = await first(pending)
    two = await first(pending)
    three = await again.receive(message("third"), "telegram:3")
    assert three is not None
    got = [finals(await read(r)) for r in (one, two, three)]
    assert got == [["You said: first"], ["You said: second"], ["You said: third"]]


async def test_the_model_is_told_which_answers_the_person_did_not_see_whole(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    assistant = await make_assistant(store=MemoryStore())
    openai_server.enqueue(ModelReply("half an answ", break_after=2))
    cut = await assistant.receive(message("long question"), "telegram:1")
    assert cut is not None
    assert any(e.interrupted for e in (await read(cut)) if isinstance(e, FinalText))
    lost = await assistant.receive(message("second question"), "telegram:2")
    assert lost is not None
    events = [e async for e in lost]
    assert any(isinstance(e, PartialAnswer | FinalText) for e in events)
    await lost.aclose()  # the adapter gave up: the person never saw it
    await lost.done()
    third = await assistant.receive(message("third question"), "telegram:3")
    assert third is not None
    await read(third)
    sent = openai_server.chat_requests[-1].messages
    answers = [m["content"] for m in sent if m["role"] == "assistant"]
    assert answers[0].endswith(CUT_OFF_NOTE) and answers[0].startswith("half")
    assert answers[1] == f"You said: second question\n\n{UNDELIVERED_NOTE}"


async def test_an_answer_the_adapter_gave_up_on_is_handed_over_again_until_delivered(
    openai_server: FakeOpenAI,
) -> None:
    settings = make_settings(OPENAI_BASE_URL=openai_server.base_url, OPENAI_API_KEY="sk-test")
    client = OpenAIModelClient(settings.openai_base_url, settings.openai_api_key, max_retries=0)
    assistant = assemble(settings, MemoryStore(), client, delivery_retry=0.2)
    await assistant.start()
    try:
        await gave_up_then_delivered(assistant)
    finally:
        await assistant.close()


async def gave_up_then_delivered(assistant: Assistant) -> None:
    pending = assistant.pending("telegram")
    reply = await assistant.receive(message("again?"), "telegram:9")
    assert reply is not None
    assert finals(await read(reply, deliver=False)) == ["You said: again?"]  # the send failed
    handed = await first(pending)
    assert handed.recovered and handed.key == "telegram:9"
    assert finals(await read(handed)) == ["You said: again?"]
    assert await nothing_from(pending, 1.0), "delivered: never handed over again"


async def test_a_message_is_answered_while_its_record_is_still_being_written(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    store = SlowRecords()
    assistant = await make_assistant(store=store)
    receiving = asyncio.ensure_future(assistant.receive(message("quick"), "telegram:5"))
    await openai_server.wait_for_requests(1)  # the model is asked before the record is durable
    assert not receiving.done()
    store.durable.set()
    reply = await receiving
    assert reply is not None
    assert finals(await read(reply)) == ["You said: quick"]


class SlowUserRecords(MemoryStore):
    """A store whose user writes wait for ``durable``, or fail (a full disk) when ``refuse`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.durable = asyncio.Event()
        self.refuse = False

    async def put_user(self, user: Any) -> None:
        await self.durable.wait()
        if self.refuse:
            raise StoreError("could not write users/x.json: No space left on device")
        await super().put_user(user)


async def test_a_new_persons_first_message_is_asked_before_their_record_is_durable_and_shown_after(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    store = SlowUserRecords()
    assistant = await make_assistant(store=store)
    reply = await assistant.receive(message("hi, I'm new"), "telegram:6")
    assert reply is not None
    await openai_server.wait_for_requests(1)  # asked while the person's record is still being written
    reading = asyncio.ensure_future(read(reply))
    await asyncio.sleep(0.2)
    assert not reading.done(), "the answer waits for the person's record"
    assert await store.find_user("telegram:1") is None
    store.durable.set()
    assert finals(await reading) == ["You said: hi, I'm new"]
    user = await store.find_user("telegram:1")
    assert user is not None and user.status == "approved"
    conv = (await store.list_conversations(f"user:{user.id}", 1))[0]
    assert [m.content for m in await store.get_messages(conv.id)] == ["hi, I'm new", "You said: hi, I'm new"]


async def test_a_new_person_answered_again_after_a_crash_is_the_same_person(make_assistant: MakeAssistant) -> None:
    """Their record is written beside the model request: a crash may keep the conversation and lose
    the record. The message answered again makes the same person (an id from its key), who finds it."""
    store = SlowUserRecords()
    first_run = await make_assistant(store=store)
    assert await first_run.receive(message("remember me"), "telegram:7") is not None
    for _ in range(100):  # the message is stored, the record still being written
        if store._messages:
            break
        await asyncio.sleep(0.01)
    await crash(first_run)
    store.durable.set()
    assert await store.find_user("telegram:1") is None, "the record was lost with the process"
    again = await make_assistant(store=store)
    assert finals(await read(await first(again.pending("telegram")))) == ["You said: remember me"]
    user = await store.find_user("telegram:1")
    assert user is not None
    assert {c.scope for c in store._convs.values()} == {f"user:{user.id}"}, "no history left under another id"
    (conv,) = await store.list_conversations(f"user:{user.id}", 5)
    assert [m.content for m in await store.get_messages(conv.id)] == ["remember me", "You said: remember me"]


async def test_a_new_persons_record_that_cannot_be_written_fails_the_turn_with_one_sentence(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    store = SlowUserRecords()
    store.refuse = True
    store.durable.set()
    assistant = await make_assistant(store=store)
    reply = await assistant.receive(message("hello?"), "telegram:8")
    assert reply is not None
    events = await read(reply)
    assert not any(isinstance(e, FinalText) and "You said" in e.text for e in events), "no answer shown"
    assert [e for e in events if isinstance(e, Notice) and e.is_error], events


async def test_a_key_recorded_by_an_earlier_run_is_not_answered_again(make_assistant: MakeAssistant) -> None:
    store = MemoryStore()
    first_run = await make_assistant(store=store)
    reply = await first_run.receive(message("once"), "telegram:77")
    assert reply is not None
    await read(reply)
    await crash(first_run)
    second_run = await make_assistant(store=store)  # forgets the keys it saw; the store does not
    assert await second_run.receive(message("once"), "telegram:77") is None
    user = await store.find_user("telegram:1")
    assert user is not None
    conv = (await store.list_conversations(f"user:{user.id}", 1))[0]
    assert [m.content for m in await store.get_messages(conv.id)] == ["once", "You said: once"]


class SlowRecords(MemoryStore):
    """A store whose intake records become durable only when the test says so."""

    def __init__(self) -> None:
        super().__init__()
        self.durable = asyncio.Event()

    async def record(self, rec: Any) -> Any:
        await self.durable.wait()
        return await super().record(rec)


async def test_a_message_that_cannot_be_recorded_is_not_acknowledged_and_holds_nobody_up(
    make_assistant: MakeAssistant,
) -> None:
    store = FullDisk()
    assistant = await make_assistant(store=store)
    with pytest.raises(StoreError):
        await assistant.receive(message("lost?"), "telegram:1")  # the adapter does not acknowledge it
    store.full = False
    reply = await assistant.receive(message("lost?"), "telegram:1")  # the messenger sends it again
    assert reply is not None
    assert finals(await read(reply)) == ["You said: lost?"]


async def test_a_record_that_cannot_be_read_back_is_skipped_and_the_rest_recovered(
    make_assistant: MakeAssistant,
) -> None:
    store = MemoryStore()
    await store.record(IntakeRecord("telegram:1", "telegram:1", {"sender": "nonsense"}, 1.0))
    first_run = await make_assistant(store=store)
    reply = await first_run.receive(message("fine"), "telegram:2")
    assert reply is not None
    await crash(first_run)  # before it was read: unanswered
    again = await make_assistant(store=store)
    recovered = await first(again.pending("telegram"))
    assert recovered.key == "telegram:2"
    assert [r.key for r in await store.unfinished("telegram")] == ["telegram:2"]


class FullDisk(MemoryStore):
    """A store that refuses intake records while ``full``."""

    def __init__(self) -> None:
        super().__init__()
        self.full = True

    async def record(self, rec: Any) -> Any:
        if self.full:
            raise StoreError("No space left on device")
        return await super().record(rec)


async def test_an_answer_stored_just_before_the_crash_is_redone_not_doubled(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    store = NoAnswerMarks()
    first_run = await make_assistant(store=store)
    reply = await first_run.receive(message("twice?"), "telegram:3")
    assert reply is not None
    await store.answer_stored.wait()  # the answer is in the conversation, the record still says received
    await crash(first_run)
    store.hold = False
    openai_server.enqueue("the second try")
    again = await make_assistant(store=store)
    recovered = await first(again.pending("telegram"))
    assert finals(await read(recovered)) == ["the second try"]
    user = await store.find_user("telegram:1")
    assert user is not None
    conv = (await store.list_conversations(f"user:{user.id}", 1))[0]
    assert [m.content for m in await store.get_messages(conv.id)] == ["twice?", "the second try"]


async def test_a_turn_redone_after_the_crash_is_counted_once(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    store = NoAnswerMarks()
    first_run = await make_assistant(store=store)
    assert await first_run.receive(message("how much?"), "telegram:4") is not None
    await store.answer_stored.wait()  # the answer and its usage are stored; the record says received
    user = await store.find_user("telegram:1")
    assert user is not None
    before = await store.usage_totals(user.id, 0)
    assert before.completion_tokens > 0
    await crash(first_run)
    store.hold = False
    openai_server.enqueue("a longer second try, which the model is asked for again")
    again = await make_assistant(store=store)
    await read(await first(again.pending("telegram")))
    assert await store.usage_totals(user.id, 0) == before, "the turn's usage once, not once per try"


async def test_an_answer_being_sent_at_the_crash_is_delivered_as_it_was_not_asked_again(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    # The adapter marks 'sending' just before its new message goes out; the core's own 'answered'
    # mark has not landed when the process dies. The restart must deliver (or find, on Telegram)
    # that very text: a fresh answer from the model could read differently and show twice.
    store = NoAnswerMarks()
    first_run = await make_assistant(store=store)
    openai_server.enqueue("the words the person may already see")
    reply = await first_run.receive(message("once?"), "telegram:5")
    assert reply is not None
    events = []
    async for event in reply:
        events.append(event)
        if isinstance(event, FinalText):
            break
    await store.answer_stored.wait()  # the core's 'answered' is stuck: the kill comes first
    store.hold = False
    await reply.shown("sending:0:0:7")
    await crash(first_run)
    asked = len(openai_server.chat_requests)
    openai_server.enqueue("other words")
    again = await make_assistant(store=store)
    recovered = await first(again.pending("telegram"))
    assert recovered.previous_ref == "sending:0:0:7"
    assert finals(await read(recovered)) == ["the words the person may already see"]
    assert len(openai_server.chat_requests) == asked, "not asked again"


class NoAnswerMarks(MemoryStore):
    """A store where the process dies between storing an answer and recording it as answered."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = True
        self.answer_stored = asyncio.Event()

    async def mark_answered(self, chat: str, key: str, answer: Any, ref: str | None = None) -> None:
        if self.hold:
            self.answer_stored.set()
            await asyncio.Event().wait()  # never: the kill comes first
        await super().mark_answered(chat, key, answer, ref)


class CountedMarks(MemoryStore):
    """A memory store counting its ``mark_answered`` writes."""

    def __init__(self) -> None:
        super().__init__()
        self.answered_marks = 0

    async def mark_answered(self, chat: str, key: str, answer: list[dict[str, Any]], ref: str | None = None) -> None:
        self.answered_marks += 1
        await super().mark_answered(chat, key, answer, ref)


async def test_the_answer_kept_as_its_final_text_went_out_is_not_written_again_unless_it_grew() -> None:
    store = CountedMarks()
    msg = message("hello")
    receipt = Receipt(store, IntakeRecord("telegram:5", str(msg.chat), incoming_to_dict(msg), 1.0), msg)
    await receipt.start_recording()
    final = FinalText("hi")
    receipt.so_far.append(final)
    await receipt.shown("sending:1")  # the final text goes out before the core's turn ends
    await receipt.answered([final])
    assert store.answered_marks == 1
    (kept,) = await store.unfinished("telegram")
    assert kept.status == "answered" and kept.answer == [event_to_dict(final)] and kept.ref == "sending:1"
    grown: list[ReplyEvent] = [final, Notice("budget")]
    await receipt.answered(grown)  # more to deliver than the mark kept: written
    assert store.answered_marks == 2
    (kept,) = await store.unfinished("telegram")
    assert kept.answer == [event_to_dict(e) for e in grown]
