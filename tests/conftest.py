"""Fixtures shared by the whole suite: the fake model provider and assistants built on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from core.app import assemble
from core.assistant import Assistant
from core.llm import OpenAIModelClient
from core.metrics import Metrics
from core.settings import Settings
from core.store.base import Store
from core.store.memory import MemoryStore
from tests.fakes.openai_server import FakeOpenAI

MakeAssistant = Callable[..., Awaitable[Assistant]]


@pytest.fixture
async def openai_server() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


def make_settings(**values: str) -> Settings:
    """Settings as an operator would write them, with test-friendly defaults."""
    base = {"FERRY_MODEL": "gpt-4o-mini", "FERRY_ACCESS": "open", "FERRY_MODEL_RETRIES": "0"}
    base.update(values)
    return Settings.from_values(base)


@pytest.fixture
async def make_assistant(openai_server: FakeOpenAI) -> AsyncIterator[MakeAssistant]:
    """Build started assistants on the fake model; each is closed after the test."""
    made: list[Assistant] = []

    async def make(
        store: Store | None = None, clock: Any = None, metrics: Metrics | None = None, **values: str
    ) -> Assistant:
        settings = make_settings(OPENAI_BASE_URL=openai_server.base_url, OPENAI_API_KEY="sk-test", **values)
        client = OpenAIModelClient(
            settings.openai_base_url, settings.openai_api_key, chunk_timeout=5.0, max_retries=0
        )
        kwargs: dict[str, Any] = {"clock": clock} if clock is not None else {}
        assistant = assemble(settings, store or MemoryStore(), client, metrics=metrics, **kwargs)
        await assistant.start()
        made.append(assistant)
        return assistant

    yield make
    for assistant in made:
        await assistant.close()
