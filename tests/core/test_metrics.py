"""The health and metrics endpoint, over real HTTP on loopback."""

from __future__ import annotations

import aiohttp

from core.metrics import HealthServer, Metrics
from tests.conftest import MakeAssistant
from tests.core.test_assistant import say
from tests.fakes.openai_server import Error, FakeOpenAI


async def test_healthz_reports_each_check_and_metrics_count_what_happened(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    metrics = Metrics()
    assistant = await make_assistant(metrics=metrics)
    connected = {"value": False}

    async def messenger() -> str | None:
        return None if connected["value"] else "not connected to Telegram yet"

    async def store() -> str | None:
        return None

    server = HealthServer(metrics, port=0)
    server.add_check("telegram", messenger)
    server.add_check("store", store)
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{server.port}"
            async with http.get(f"{url}/healthz") as r:
                assert r.status == 503
                assert (await r.json())["checks"] == {"telegram": "not connected to Telegram yet", "store": "ok"}
            connected["value"] = True
            async with http.get(f"{url}/healthz") as r:
                assert r.status == 200 and (await r.json())["ready"] is True

            await say(assistant, "hello")
            openai_server.enqueue(Error.insufficient_quota())
            await say(assistant, "again")
            async with http.get(f"{url}/metrics") as r:
                body = await r.text()
            assert 'ferry_messages_total{outcome="ok",platform="telegram"} 2.0' in body
            assert 'ferry_errors_total{kind="model_quota"} 1.0' in body
            assert 'ferry_tokens_total{kind="completion",model="gpt-4o-mini"}' in body
            assert "ferry_model_first_token_seconds_count" in body
    finally:
        await server.stop()
