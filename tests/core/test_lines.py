"""Per-chat order, kept once, in the core: a message's place is taken when it is submitted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from core.lines import ChatLines
from core.reply import Reply
from core.types import FinalText, PartialAnswer, ReplyEvent
from tests.conftest import MakeAssistant
from tests.core.test_assistant import conversation_of, final, incoming
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.openai_server import Reply as ModelReply


async def read_all(reply: Reply) -> list[ReplyEvent]:
    async with reply:
        return [event async for event in reply]


async def test_the_place_in_line_is_taken_at_submit_not_at_the_first_read(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    assistant = await make_assistant()
    openai_server.enqueue(ModelReply("first answer", chunk_size=2, chunk_delay=0.02))
    first = assistant.submit(incoming("one"))
    second = assistant.submit(incoming("two"))
    finished: list[str] = []

    async def read(reply: Reply) -> list[ReplyEvent]:
        events = await read_all(reply)
        finished.append(final(events).text)
        return events

    # The adapter starts reading the second reply first; it still comes out second.
    late = asyncio.create_task(read(second))
    await asyncio.sleep(0)
    early = await read(first)
    await late
    assert final(early).text == "first answer"
    assert finished == ["first answer", "You said: two"]
    second_context = [m["content"] for m in openai_server.chat_requests[-1].messages[1:]]
    assert second_context == ["one", "first answer", "two"]


async def test_a_reader_that_stops_reading_does_not_stall_the_chat(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    assistant = await make_assistant()
    unread = assistant.submit(incoming("one"))
    second = assistant.submit(incoming("two"))
    # Nobody reads the first reply, yet the second message reaches the model and is stored.
    await openai_server.wait_for_requests(2)
    await second.done()
    assert [role for role, _, _ in await conversation_of(assistant)] == ["user", "assistant"] * 2
    await unread.aclose()
    assert final(await read_all(second)).text == "You said: two"


async def test_a_slow_reader_gets_the_answer_so_far_in_one_piece(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    assistant = await make_assistant()
    openai_server.enqueue(ModelReply("many small pieces of one long answer", chunk_size=1))
    reply = assistant.submit(incoming("talk"))
    await reply.done()
    events = await read_all(reply)
    partial = [e for e in events if isinstance(e, PartialAnswer)]
    assert partial == [PartialAnswer("many small pieces of one long answer", ended=True)]
    assert isinstance(events[-1], FinalText)


async def test_the_end_of_the_stream_is_told_before_the_final_text(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    """An adapter learns the model is done before the answer is stored, so it starts no preview the
    final text would replace a moment later; a stream that broke off is not "ended"."""
    assistant = await make_assistant()
    openai_server.enqueue(ModelReply("one two three four", chunk_size=4, chunk_delay=0.02))
    events = await read_all(assistant.submit(incoming("talk")))  # read as they come
    partial = [e for e in events if isinstance(e, PartialAnswer)]
    assert len(partial) >= 3
    assert [p.ended for p in partial] == [False] * (len(partial) - 1) + [True]
    assert partial[-1].text == "one two three four"
    assert isinstance(events[-1], FinalText) and events[-1].text == "one two three four"

    openai_server.enqueue(ModelReply("cut short here", chunk_size=4, chunk_delay=0.02, break_after=2))
    events = await read_all(assistant.submit(incoming("again")))
    assert not any(e.ended for e in events if isinstance(e, PartialAnswer))
    assert isinstance(events[-1], FinalText) and events[-1].interrupted


async def test_a_reply_dropped_unread_does_not_hold_up_the_next(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    assistant = await make_assistant()
    dropped = assistant.submit(incoming("one"))
    second = assistant.submit(incoming("two"))
    del dropped  # e.g. the adapter failed between submitting and reading
    assert final(await read_all(second)).text == "You said: two"


async def test_a_line_whose_task_starts_at_once_still_answers_its_first_message() -> None:
    """Under an eager task factory (Python 3.12+) the line's task runs as soon as it is made."""
    factory = getattr(asyncio, "eager_task_factory", None)
    if factory is None:
        pytest.skip("no eager tasks before Python 3.12")
    loop = asyncio.get_running_loop()
    loop.set_task_factory(factory)
    try:
        lines = ChatLines()

        async def work() -> AsyncIterator[ReplyEvent]:
            yield FinalText("answered")

        first, second = lines.join("telegram:1", work), lines.join("telegram:1", work)
        assert [final(await asyncio.wait_for(read_all(r), 5)).text for r in (first, second)] == ["answered"] * 2
        await lines.close()
    finally:
        loop.set_task_factory(None)
