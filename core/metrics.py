"""Prometheus metrics and the /healthz + /metrics endpoint every bot process serves.

Each process owns one :class:`Metrics` (its own registry, no module-level state), passed to the
core and to the adapter. The HTTP endpoint is plain aiohttp; readiness is decided by checks the
process registers (messenger connected, store opens).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[str | None]]
"""Returns None when ready, or one sentence saying what is not ready."""


class Metrics:
    """The counters and histograms Ferry exports."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.messages = Counter(
            "ferry_messages_total", "Messages handled, by messenger and outcome",
            ["platform", "outcome"], registry=self.registry,
        )
        self.model_latency = Histogram(
            "ferry_model_first_token_seconds", "Time from request to the model's first text",
            ["model"], registry=self.registry,
            buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
        )
        self.model_duration = Histogram(
            "ferry_model_answer_seconds", "Time from request to the complete answer",
            ["model"], registry=self.registry,
            buckets=(0.5, 1, 2, 4, 8, 16, 32, 64, 128),
        )
        self.tokens = Counter(
            "ferry_tokens_total", "Tokens used, by model and kind (prompt, completion)",
            ["model", "kind"], registry=self.registry,
        )
        self.cost = Counter("ferry_cost_usd_total", "Model cost in USD", ["model"], registry=self.registry)
        self.errors = Counter(
            "ferry_errors_total", "Errors by kind (model error kinds, store, internal, messenger)",
            ["kind"], registry=self.registry,
        )
        self.flood_waits = Counter(
            "ferry_flood_control_waits_total", "Times a messenger said 'too many requests'",
            ["platform"], registry=self.registry,
        )
        self.flood_wait_seconds = Counter(
            "ferry_flood_control_wait_seconds_total", "Seconds spent waiting for flood control",
            ["platform"], registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class HealthServer:
    """Serves ``/healthz`` (200 when every check passes, else 503 with the reasons) and ``/metrics``."""

    def __init__(self, metrics: Metrics, port: int, host: str = "127.0.0.1") -> None:
        self.metrics = metrics
        self.port = port
        self.host = host
        self._checks: list[tuple[str, ReadinessCheck]] = []
        self._runner: web.AppRunner | None = None

    def add_check(self, name: str, check: ReadinessCheck) -> None:
        self._checks.append((name, check))

    async def status(self) -> dict[str, str]:
        """Each check's name and ``ok`` or what is wrong."""
        result: dict[str, str] = {}
        for name, check in self._checks:
            try:
                problem = await check()
            except Exception as e:  # a check that fails is a reason, not a crash
                problem = f"check failed: {e}"
            result[name] = problem or "ok"
        return result

    async def _healthz(self, request: web.Request) -> web.Response:
        status = await self.status()
        ready = all(v == "ok" for v in status.values())
        return web.json_response({"ready": ready, "checks": status}, status=200 if ready else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        body = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:  # an ephemeral port (tests): report the one the system chose
            self.port = int(self._runner.addresses[0][1])
        log.info("health and metrics on http://%s:%d/healthz and /metrics", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
