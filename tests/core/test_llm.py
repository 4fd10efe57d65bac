"""The model client against the fake OpenAI server: the real openai library over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import aiohttp
import httpx2
import openai
import pytest

from core.llm import Delta, ModelClient, ModelError, ModelEvent, OpenAIModelClient, Stop, Usage, classify
from tests.fakes.openai_server import Error, FakeOpenAI, Reply
from tests.fakes.openai_server import Usage as FakeUsage

HISTORY = [
    {"role": "system", "content": "You are Ferry."},
    {"role": "user", "content": "What is the capital of Indonesia?"},
    {"role": "assistant", "content": "Jakarta."},
    {"role": "user", "content": "And its population?"},
]


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(chunk_size=4) as fake:
        yield fake


@pytest.fixture
async def client(server: FakeOpenAI) -> AsyncIterator[OpenAIModelClient]:
    async with OpenAIModelClient(server.base_url, "sk-test-secret", chunk_timeout=5.0) as model_client:
        yield model_client


async def collect(events: AsyncIterator[ModelEvent]) -> tuple[str, list[Usage]]:
    text: list[str] = []
    usages: list[Usage] = []
    async for event in events:
        if isinstance(event, Delta):
            text.append(event.text)
        elif isinstance(event, Usage):
            usages.append(event)
    return "".join(text), usages


async def failure(events: AsyncIterator[ModelEvent]) -> ModelError:
    with pytest.raises(ModelError) as info:
        await collect(events)
    return info.value


def test_the_client_satisfies_the_protocol(client: OpenAIModelClient) -> None:
    model_client: ModelClient = client
    assert model_client is client


# --- answers ----------------------------------------------------------------------------


async def test_streams_the_answer_and_reports_usage(server: FakeOpenAI, client: OpenAIModelClient) -> None:
    server.enqueue(Reply("About 11 million people.", usage=FakeUsage(42, 7)))
    text, usages = await collect(client.stream("gpt-4o", HISTORY))
    assert text == "About 11 million people."
    assert usages == [Usage(prompt_tokens=42, completion_tokens=7)]
    [request] = server.chat_requests
    assert request.json["messages"] == HISTORY
    assert request.json["stream"] is True
    assert request.json["stream_options"] == {"include_usage": True}
    assert request.json["model"] == "gpt-4o"
    assert request.headers["authorization"] == "Bearer sk-test-secret"


async def test_usage_is_the_last_event(server: FakeOpenAI, client: OpenAIModelClient) -> None:
    server.enqueue(Reply("one two three", chunk_size=2))
    events = [e async for e in client.stream("gpt-4o", HISTORY)]
    assert all(isinstance(e, Delta) for e in events[:-1])
    assert isinstance(events[-1], Usage)
    assert "".join(e.text for e in events if isinstance(e, Delta)) == "one two three"


async def test_a_server_that_sends_no_usage_gives_no_usage_event(server: FakeOpenAI, client: OpenAIModelClient) -> None:
    server.enqueue(Reply("Hello without counts", send_usage=False))
    text, usages = await collect(client.stream("llama3.1:8b", HISTORY))
    assert text == "Hello without counts"
    assert usages == []


async def test_the_default_reply_echoes_the_last_user_message(server: FakeOpenAI, client: OpenAIModelClient) -> None:
    text, _ = await collect(client.stream("fake-model", HISTORY))
    assert text == "You said: And its population?"


async def test_the_messages_given_are_never_modified(server: FakeOpenAI, client: OpenAIModelClient) -> None:
    messages = [dict(m) for m in HISTORY]
    await collect(client.stream("gpt-4o", messages))
    await collect(client.stream("gpt-4o", messages))
    assert messages == HISTORY
    assert [r.messages for r in server.chat_requests] == [HISTORY, HISTORY]


async def test_the_request_is_the_one_the_library_sends(server: FakeOpenAI, client: OpenAIModelClient) -> None:
    """The streamed request skips the library's per-request plumbing; what reaches the server is
    still the library's request: method, path, every header (its length among them) and body."""
    await collect(client.stream("gpt-4o", HISTORY))
    params = server.chat_requests[0].json
    response = await client._client.post("/chat/completions", body=params, cast_to=httpx2.Response, stream=True)
    await response.aread()
    await response.aclose()
    ours, library = server.chat_requests
    assert (ours.method, ours.path) == (library.method, library.path)
    assert ours.json == library.json
    assert ours.headers == library.headers
    assert ours.headers["authorization"] == "Bearer sk-test-secret"


@pytest.mark.parametrize(
    ("model", "param"),
    [
        ("gpt-4o", "max_tokens"),
        ("llama3.1:8b", "max_tokens"),
        ("gpt-5-mini", "max_completion_tokens"),
        ("o4-mini", "max_completion_tokens"),
        ("openai/o3", "max_completion_tokens"),
    ],
)
async def test_the_reply_budget_is_sent_under_the_name_the_model_accepts(
    server: FakeOpenAI, client: OpenAIModelClient, model: str, param: str
) -> None:
    await collect(client.stream(model, HISTORY, max_tokens=300))
    body = server.chat_requests[-1].json
    assert body[param] == 300
    assert {"max_tokens", "max_completion_tokens"} & set(body) == {param}


async def test_no_budget_sends_no_limit(server: FakeOpenAI, client: OpenAIModelClient) -> None:
    await collect(client.stream("gpt-4o", HISTORY))
    assert not {"max_tokens", "max_completion_tokens"} & set(server.chat_requests[-1].json)


async def test_a_slow_stream_within_the_timeout_completes(server: FakeOpenAI) -> None:
    server.enqueue(Reply("slow but fine", chunk_size=5, chunk_delay=0.02, first_chunk_delay=0.02))
    async with OpenAIModelClient(server.base_url, "k", chunk_timeout=5.0) as model_client:
        text, _ = await collect(model_client.stream("gpt-4o", HISTORY))
    assert text == "slow but fine"


# --- retries ----------------------------------------------------------------------------


async def test_rate_limit_is_retried_with_the_same_request(server: FakeOpenAI, client: OpenAIModelClient) -> None:
    server.enqueue(Error.rate_limited(retry_after_ms=10), Reply("after the wait"))
    text, _ = await collect(client.stream("gpt-4o", HISTORY))
    assert text == "after the wait"
    first, retry = server.chat_requests
    assert (first.retry_count, retry.retry_count) == (0, 1)
    assert retry.json == first.json  # no duplicated history on the retry
    assert retry.messages == HISTORY


async def test_rate_limit_after_all_retries_is_rate_limited(server: FakeOpenAI, client: OpenAIModelClient) -> None:
    server.enqueue(*[Error.rate_limited(retry_after_ms=1)] * 3, Reply("never reached"))
    error = await failure(client.stream("gpt-4o", HISTORY))
    assert error.kind == "rate_limited"
    assert error.status == 429
    assert len(server.chat_requests) == 3
    assert server.pending == 1


async def test_insufficient_quota_is_not_retried(server: FakeOpenAI, client: OpenAIModelClient) -> None:
    server.enqueue(Error.insufficient_quota(), Reply("a retry would get this"), Reply("and this"))
    error = await failure(client.stream("gpt-4o", HISTORY))
    assert error.kind == "quota"
    assert len(server.chat_requests) == 1
    assert server.pending == 2


async def test_server_errors_after_all_retries_mean_the_provider_is_down(
    server: FakeOpenAI, client: OpenAIModelClient
) -> None:
    server.enqueue(*[Error.server_error(500, retry_after_ms=1)] * 3)
    error = await failure(client.stream("gpt-4o", HISTORY))
    assert error.kind == "provider_down"
    assert error.status == 500
    assert [r.retry_count for r in server.chat_requests] == [0, 1, 2]
    assert len({json.dumps(r.json, sort_keys=True) for r in server.chat_requests}) == 1


async def test_max_retries_is_configurable(server: FakeOpenAI) -> None:
    server.enqueue(Error.server_error(503, retry_after_ms=1), Reply("not reached"))
    async with OpenAIModelClient(server.base_url, "k", max_retries=0) as model_client:
        error = await failure(model_client.stream("gpt-4o", HISTORY))
    assert error.kind == "provider_down"
    assert len(server.chat_requests) == 1


async def test_a_server_error_then_success_is_invisible(server: FakeOpenAI, client: OpenAIModelClient) -> None:
    server.enqueue(Error.server_error(502, retry_after_ms=1), Reply("fine now"))
    text, _ = await collect(client.stream("gpt-4o", HISTORY))
    assert text == "fine now"


# --- errors that are not retried ----------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (Error.context_length_exceeded(), "too_large"),
        (Error(413, "Request Entity Too Large", type=None), "too_large"),
        (Error(400, "prompt has too many tokens for this model", code=None), "too_large"),
        (
            Error(400, "the request exceeds the available context size, try increasing it", code=None),
            "too_large",
        ),
        (Error.model_not_found("gpt-7"), "unknown_model"),
        (Error(404, "model 'llama9' not found", type="api_error", code=None), "unknown_model"),
        (Error.invalid_api_key(), "auth"),
        (Error(403, "Project does not have access to model", type=None, code=None), "auth"),
        (Error(400, "Invalid value for 'temperature'", code="invalid_value"), "bad_response"),
        (Error(422, "Unprocessable", code=None), "bad_response"),
    ],
)
async def test_errors_are_classified_without_retrying(
    server: FakeOpenAI, client: OpenAIModelClient, error: Error, kind: str
) -> None:
    server.enqueue(error, Reply("must not be used"))
    raised = await failure(client.stream("gpt-4o", HISTORY))
    assert raised.kind == kind
    assert raised.partial_text == ""
    assert raised.status == error.status
    assert len(server.chat_requests) == 1


async def test_the_api_key_never_appears_in_errors_or_repr(server: FakeOpenAI, client: OpenAIModelClient) -> None:
    server.enqueue(Error.invalid_api_key())
    raised = await failure(client.stream("gpt-4o", HISTORY))
    assert "sk-test-secret" not in str(raised)
    assert "sk-test-secret" not in repr(client)


async def test_an_unreachable_provider_is_down() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with OpenAIModelClient(f"http://127.0.0.1:{port}/v1", "k", max_retries=0) as model_client:
        error = await failure(model_client.stream("gpt-4o", HISTORY))
        assert error.kind == "provider_down"
        with pytest.raises(ModelError) as info:
            await model_client.list_models()
        assert info.value.kind == "provider_down"


# --- streams that fail halfway --------------------------------------------------------------


async def test_a_dropped_connection_keeps_the_partial_text(server: FakeOpenAI, client: OpenAIModelClient) -> None:
    server.enqueue(Reply("Jakarta has about eleven million", chunk_size=4, break_after=3), Reply("no retry"))
    error = await failure(client.stream("gpt-4o", HISTORY))
    assert error.kind == "interrupted"
    assert error.partial_text == "Jakarta has "
    assert len(server.chat_requests) == 1  # a started stream is never retried


async def test_an_error_event_mid_stream_keeps_the_partial_text(server: FakeOpenAI, client: OpenAIModelClient) -> None:
    server.enqueue(Reply("Jakarta has about", chunk_size=4, break_after=2, break_with_error=True))
    error = await failure(client.stream("gpt-4o", HISTORY))
    assert error.kind == "interrupted"
    assert error.partial_text == "Jakarta "


async def test_an_error_event_before_any_text_means_the_provider_failed(
    server: FakeOpenAI, client: OpenAIModelClient
) -> None:
    server.enqueue(Reply("never shown", break_after=0, break_with_error=True))
    error = await failure(client.stream("gpt-4o", HISTORY))
    assert error.kind == "provider_down"
    assert error.partial_text == ""


async def test_a_stream_that_hangs_after_some_text_is_interrupted(server: FakeOpenAI) -> None:
    server.enqueue(Reply("Jakarta has about", chunk_size=4, hang_after=2))
    async with OpenAIModelClient(server.base_url, "k", chunk_timeout=0.2) as model_client:
        error = await failure(model_client.stream("gpt-4o", HISTORY))
    assert error.kind == "interrupted"
    assert error.partial_text == "Jakarta "
    async with asyncio.timeout(5):
        await server.wait_for_disconnects(1)  # the client hung up rather than leaving it open


async def test_a_stream_that_hangs_before_any_text_means_the_provider_is_down(server: FakeOpenAI) -> None:
    server.enqueue(Reply("never shown", hang_after=0))
    async with OpenAIModelClient(server.base_url, "k", chunk_timeout=0.2, max_retries=0) as model_client:
        error = await failure(model_client.stream("gpt-4o", HISTORY))
    assert error.kind == "provider_down"
    assert error.partial_text == ""


async def test_a_response_that_never_starts_means_the_provider_is_down(server: FakeOpenAI) -> None:
    server.enqueue(Reply("too late", first_chunk_delay=2.0))
    async with OpenAIModelClient(server.base_url, "k", chunk_timeout=0.2, max_retries=0) as model_client:
        error = await failure(model_client.stream("gpt-4o", HISTORY))
    assert error.kind == "provider_down"


async def test_cancellation_propagates_and_closes_the_response(server: FakeOpenAI, client: OpenAIModelClient) -> None:
    server.enqueue(Reply("Jakarta has about", chunk_size=4, hang_after=2))
    first_delta = asyncio.Event()
    received: list[str] = []

    async def consume() -> None:
        async for event in client.stream("gpt-4o", HISTORY):
            if isinstance(event, Delta):
                received.append(event.text)
                first_delta.set()

    task = asyncio.create_task(consume())
    async with asyncio.timeout(5):
        await first_delta.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert received[0] == "Jaka"
    async with asyncio.timeout(5):
        await server.wait_for_disconnects(1)
    # The client is still usable afterwards.
    text, _ = await collect(client.stream("gpt-4o", HISTORY))
    assert text == "You said: And its population?"


async def test_stopping_early_closes_the_response(server: FakeOpenAI, client: OpenAIModelClient) -> None:
    server.enqueue(Reply("a long answer that the reader abandons", chunk_size=2, chunk_delay=0.01))
    stream = client.stream("gpt-4o", HISTORY)
    async for _event in stream:
        break
    await stream.aclose()
    async with asyncio.timeout(5):
        await server.wait_for_disconnects(1)


async def test_a_server_that_ignores_streaming_is_a_bad_response(server: FakeOpenAI, client: OpenAIModelClient) -> None:
    server.enqueue(Reply("a plain JSON answer", ignore_stream=True))
    error = await failure(client.stream("gpt-4o", HISTORY))
    assert error.kind == "bad_response"


async def test_an_empty_answer_is_not_an_error(server: FakeOpenAI, client: OpenAIModelClient) -> None:
    server.enqueue(Reply("", finish_reason="content_filter"))
    text, _ = await collect(client.stream("gpt-4o", HISTORY))
    assert text == ""


# --- models -------------------------------------------------------------------------------


async def test_list_models(client: OpenAIModelClient) -> None:
    assert await client.list_models() == ["fake-model"]


async def test_list_models_errors_become_model_errors(server: FakeOpenAI, client: OpenAIModelClient) -> None:
    server.enqueue_models_error(Error.invalid_api_key())
    with pytest.raises(ModelError) as info:
        await client.list_models()
    assert info.value.kind == "auth"


def test_classify_a_timeout_after_text_is_interrupted() -> None:
    error = classify(TimeoutError(), "partial")
    assert (error.kind, error.partial_text) == ("interrupted", "partial")


def test_classify_anything_unexpected_is_a_bad_response() -> None:
    assert classify(RuntimeError("weird")).kind == "bad_response"


def test_from_settings_builds_a_client() -> None:
    model_client = OpenAIModelClient.from_settings("http://127.0.0.1:1/v1", "sk-x", 30.0, max_retries=1)
    assert model_client.chunk_timeout == 30.0
    assert "sk-x" not in repr(model_client)


def test_a_missing_api_key_does_not_crash() -> None:
    assert OpenAIModelClient.from_settings("http://127.0.0.1:1/v1", None) is not None


# --- the fake itself (its wire format is a contract other tests rely on) --------------------------


async def test_fake_sse_wire_format(server: FakeOpenAI) -> None:
    server.enqueue(Reply("Hi!", chunk_size=2, usage=FakeUsage(5, 2)))
    body = {
        "model": "m",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "hi"}],
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{server.base_url}/chat/completions", json=body) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        raw = (await response.read()).decode()
    events = [e for e in raw.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "Hi!"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


async def test_fake_sends_no_usage_chunk_unless_asked(server: FakeOpenAI) -> None:
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{server.base_url}/chat/completions", json=body) as response,
    ):
        raw = (await response.read()).decode()
    chunks = [json.loads(e.removeprefix("data: ")) for e in raw.split("\n\n") if e and e != "data: [DONE]"]
    assert all(c["choices"] for c in chunks)


async def test_fake_non_stream_reply_through_the_library(server: FakeOpenAI) -> None:
    server.enqueue(Reply("Hello!", usage=FakeUsage(5, 2)))
    async with openai.AsyncOpenAI(base_url=server.base_url, api_key="test") as raw_client:
        completion = await raw_client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert completion.choices[0].message.content == "Hello!"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == 7


async def test_fake_error_body_is_openais(server: FakeOpenAI) -> None:
    server.enqueue(Error.rate_limited(retry_after_ms=25, retry_after=1))
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{server.base_url}/chat/completions", json={"model": "m", "messages": []}) as response,
    ):
        assert response.status == 429
        assert response.headers["retry-after-ms"] == "25"
        assert response.headers["retry-after"] == "1"
        assert await response.json() == {
            "error": {
                "message": "Rate limit reached for requests. Please try again shortly.",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        }


async def test_fake_serves_many_concurrent_requests(server: FakeOpenAI, client: OpenAIModelClient) -> None:
    async def ask(n: int) -> str:
        text, _ = await collect(client.stream("fake-model", [{"role": "user", "content": f"question {n}"}]))
        return text

    answers = await asyncio.gather(*(ask(n) for n in range(50)))
    assert answers == [f"You said: question {n}" for n in range(50)]
    async with asyncio.timeout(5):
        await server.wait_for_requests(50)


async def test_a_truncated_answer_reports_why_it_stopped() -> None:
    async with FakeOpenAI() as server:
        client = OpenAIModelClient(server.base_url, "sk-test", max_retries=0)
        server.enqueue(Reply("cut here", finish_reason="length"))
        events = [e async for e in client.stream("gpt-4o", [{"role": "user", "content": "hi"}])]
        await client.aclose()
    assert Stop("length") in events
    assert events.index(Stop("length")) > max(i for i, e in enumerate(events) if isinstance(e, Delta))
