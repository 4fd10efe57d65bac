"""Real model servers (issue 13): strict chat templates, small and unknown context windows.

The real ``openai`` client and the assistant core against the fake provider, set up the way
llama.cpp, vLLM and OpenRouter behave (see the fake's docstring for the upstream sources).
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from core import llm
from core.assistant import Assistant
from core.context import alternate
from core.store.base import MessageRecord, Role
from tests.conftest import MakeAssistant
from tests.core.test_assistant import conversation_of, final, say, texts
from tests.fakes.openai_server import Error, FakeOpenAI, Reply


def strictly_alternating(messages: list[dict[str, str]]) -> bool:
    """The check Gemma's and Mistral's chat templates make: [system], user, assistant, user, ..."""
    rest = messages[1:] if messages and messages[0]["role"] == "system" else messages
    return all(m["role"] == ("user" if i % 2 == 0 else "assistant") for i, m in enumerate(rest))


async def add_history(assistant: Assistant, sender: str, roles_and_texts: list[tuple[Role, str]]) -> None:
    """Append messages to the person's current conversation, as an imported chat is stored."""
    user = await assistant.store.find_user(sender)
    assert user is not None
    conv = (await assistant.store.list_conversations(f"user:{user.id}", 1))[0]
    await assistant.store.append_messages(
        [
            MessageRecord(id=uuid.uuid4().hex, conversation_id=conv.id, role=role, content=text, created_at=time.time())
            for role, text in roles_and_texts
        ]
    )


async def test_an_imported_chat_with_answers_in_a_row_is_accepted_by_a_strict_template(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    openai_server.strict_roles = True
    assistant = await make_assistant()
    assert final(await say(assistant, "hello")).text == "You said: hello"
    # A WhatsApp chat: the assistant often sends several messages in a row, and opens chats.
    await add_history(assistant, "telegram:1", [
        ("assistant", "Here is part one."), ("assistant", "Part two."), ("assistant", "Part three."),
        ("user", "thanks"), ("user", "and one more thing"),
    ])
    answer = final(await say(assistant, "what did you say?"))
    assert answer.text == "You said: thanks\n\nand one more thing\n\nwhat did you say?"
    sent = openai_server.chat_requests[-1].messages
    assert strictly_alternating(sent)
    merged = "You said: hello\n\nHere is part one.\n\nPart two.\n\nPart three."
    assert sent[2] == {"role": "assistant", "content": merged}


def test_alternate_folds_an_opening_answer_into_the_system_prompt() -> None:
    sent = alternate([
        {"role": "system", "content": "be brief"},
        {"role": "assistant", "content": "Hi! I'm ChatGPT."},
        {"role": "assistant", "content": "Ask me anything."},
        {"role": "user", "content": "hello"},
    ])
    assert strictly_alternating(sent)
    assert sent[0]["role"] == "system" and "Hi! I'm ChatGPT.\n\nAsk me anything." in sent[0]["content"]
    assert sent[1:] == [{"role": "user", "content": "hello"}]


async def test_a_strict_template_behind_llama_cpp_python_streaming_says_what_went_wrong(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    # llama-cpp-python answers a failed stream with an empty 200; Ferry asks once without streaming.
    openai_server.context_window = 60
    openai_server.empty_stream_failures = True
    assistant = await make_assistant(FERRY_MODEL="local-gguf", FERRY_MODELS="local-gguf", FERRY_CONTEXT_WINDOW="100000")
    reply = texts(await say(assistant, "word " * 400))
    assert reply == ["This conversation is too long for the model. Start a new one with /new, or shorten your message."]


@pytest.mark.parametrize("reports", ["llama.cpp", "vllm", "openrouter"])
async def test_an_unknown_model_gets_the_window_its_server_reports(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI, reports: str
) -> None:
    openai_server.context_window = 2048
    openai_server.reports = reports
    openai_server.models = ["local-gguf"]
    assistant = await make_assistant(FERRY_MODEL="local-gguf", FERRY_MODELS="local-gguf")
    long = "many words here " * 200  # about 800 tokens a message by the fake's count
    for n in range(6):
        answer = final(await say(assistant, f"{n} {long}"))
        assert answer.text.startswith(f"You said: {n}"), answer.text
    # The sixth message would need ~5,000 tokens with all the history: older turns were dropped.
    assert openai_server._prompt_tokens(openai_server.chat_requests[-1].messages) <= 2048
    # The window was asked for once, not before every message.
    assert [r.path for r in openai_server.lookups] == ["/v1/models", "/props"]


async def test_the_window_setting_wins_and_too_large_is_trimmed_harder_then_sent_again(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    openai_server.context_window = 2048  # published nowhere, and the setting says too much
    assistant = await make_assistant(
        FERRY_MODEL="local-gguf", FERRY_MODELS="local-gguf", FERRY_CONTEXT_WINDOW="32768"
    )
    long = "many words here " * 200
    for n in range(6):
        answer = final(await say(assistant, f"{n} {long}"))
        assert answer.text.startswith(f"You said: {n}"), answer.text
    # The provider said "maximum context length is 2048 tokens"; the retry fitted that.
    assert openai_server.chat_requests[-1].messages[-1]["content"].startswith("5 ")
    assert len(openai_server.chat_requests) > 6
    assert [m[0] for m in await conversation_of(assistant)].count("assistant") == 6


async def test_an_answer_that_fills_the_window_does_not_advise_continue(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    openai_server.context_window = 2048
    openai_server.reports = "llama.cpp"
    openai_server.chars_per_token = 3  # the model's tokenizer counts more than Ferry's estimate
    assistant = await make_assistant(FERRY_MODEL="local-gguf", FERRY_MODELS="local-gguf")
    openai_server.enqueue(Reply("blah " * 3000))
    answer = final(await say(assistant, "tell me everything " * 190))
    assert answer.interrupted
    assert "continue" not in answer.text
    assert answer.text.endswith(
        "_(cut off: the conversation has filled the model's memory; start a new one with /new)_"
    )


async def lookups_made(server: FakeOpenAI, count: int) -> None:
    for _ in range(200):
        if len(server.lookups) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {count} window lookups, saw {[r.path for r in server.lookups]}")


async def test_the_window_is_asked_when_the_core_starts_not_by_the_first_message(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    """After a restart every chat's first message waited for ``/v1/models`` and ``/props``: two
    round trips to a hosted provider before the model was asked."""
    openai_server.context_window = 2048
    openai_server.reports = "vllm"
    openai_server.models = ["local-gguf"]
    assistant = await make_assistant(FERRY_MODEL="local-gguf", FERRY_MODELS="local-gguf")
    await lookups_made(openai_server, 2)
    assert openai_server.chat_requests == []  # asked before anyone wrote
    long = "many words here " * 200
    for n in range(6):
        assert final(await say(assistant, f"{n} {long}")).text.startswith(f"You said: {n}")
    assert openai_server._prompt_tokens(openai_server.chat_requests[-1].messages) <= 2048
    assert [r.path for r in openai_server.lookups] == ["/v1/models", "/props"]


async def test_a_known_model_or_the_window_setting_asks_nothing(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    await make_assistant(FERRY_MODEL="gpt-4o-mini", FERRY_MODELS="gpt-4o-mini")
    await make_assistant(FERRY_MODEL="local-gguf", FERRY_MODELS="local-gguf", FERRY_CONTEXT_WINDOW="4096")
    await asyncio.sleep(0.1)
    assert openai_server.lookups == []


async def test_a_server_that_did_not_answer_about_the_window_is_asked_again_later(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """llama.cpp answers 503 while it loads its model, and a bot often starts before its model
    server: that silence is not the server's answer (the window it reports once up is)."""
    openai_server.context_window = 2048
    openai_server.reports = "vllm"
    openai_server.models = ["local-gguf"]
    openai_server.enqueue_models_error(Error.server_error(503))
    assistant = await make_assistant(FERRY_MODEL="local-gguf", FERRY_MODELS="local-gguf")
    await lookups_made(openai_server, 2)
    # Not asked again at once: the message meanwhile fits the catalogue's default window.
    assert final(await say(assistant, "hello")).text.startswith("You said: hello")
    assert len(openai_server.lookups) == 2

    monkeypatch.setattr(llm, "WINDOW_RETRY", 0.0)
    openai_server.enqueue_models_error(Error.server_error(503))
    other = await make_assistant(FERRY_MODEL="local-gguf", FERRY_MODELS="local-gguf")
    await lookups_made(openai_server, 4)
    long = "many words here " * 200
    for n in range(6):
        assert final(await say(other, f"{n} {long}", sender="telegram:2")).text.startswith(f"You said: {n}")
    # Asked again by the next message, answered, and kept: the window the server reports is used.
    assert openai_server._prompt_tokens(openai_server.chat_requests[-1].messages) <= 2048
    assert [r.path for r in openai_server.lookups] == ["/v1/models", "/props"] * 3
