"""The bot processes' event loop (bots/loop.py): uvloop by default, asyncio's own on request."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import weakref
from collections.abc import Iterator

import pytest

from bots import loop as event_loop
from core.settings import Settings


@pytest.fixture(autouse=True)
def _gc_as_it_was() -> Iterator[None]:
    """``run`` tunes the process's cycle collector; the test process gets its own back."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


async def _where() -> tuple[str, int]:
    """The running loop's module, and a value handed back from a thread (as the store's group commit does)."""
    running = asyncio.get_running_loop()
    future: asyncio.Future[int] = running.create_future()
    threading.Thread(target=lambda: running.call_soon_threadsafe(future.set_result, 42)).start()
    return type(running).__module__, await future


def test_the_bots_run_on_uvloop_by_default(caplog: pytest.LogCaptureFixture) -> None:
    assert Settings.load({}).event_loop == "uvloop"
    with caplog.at_level(logging.INFO, logger="bots.loop"):
        module, value = event_loop.run(_where())
    assert module.startswith("uvloop") and value == 42
    assert any(r.getMessage().startswith("event loop: uvloop ") for r in caplog.records)


def test_ferry_event_loop_asyncio_runs_asyncios_own(caplog: pytest.LogCaptureFixture) -> None:
    choice = Settings.load({"FERRY_EVENT_LOOP": " AsyncIO "}).event_loop
    with caplog.at_level(logging.INFO, logger="bots.loop"):
        module, value = event_loop.run(_where(), choice)
    assert module.startswith("asyncio") and value == 42
    assert [r.getMessage() for r in caplog.records] == ["event loop: asyncio"]


def test_without_uvloop_installed_asyncios_loop_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as on Windows, where it has no build
    name, factory = event_loop.loop_factory("uvloop")
    assert factory is None and name == "asyncio (uvloop is not installed)"
    module, _ = event_loop.run(_where())
    assert module.startswith("asyncio")


def test_the_bots_tune_the_cycle_collector_for_a_long_lived_process() -> None:
    """What startup made is left out of the collector's passes, and it runs less often (see
    ``tune_gc``); objects in reference cycles are still collected."""
    assert gc.get_threshold() != event_loop.GC_THRESHOLDS

    async def inside() -> tuple[tuple[int, int, int], int, bool]:
        class Cycle:
            me: object = None

        cycle = Cycle()
        cycle.me = cycle
        gone = weakref.ref(cycle)
        del cycle
        gc.collect()
        return gc.get_threshold(), gc.get_freeze_count(), gone() is None

    thresholds, frozen, collected = event_loop.run(inside())
    assert thresholds == event_loop.GC_THRESHOLDS
    assert frozen > 10_000  # the modules, classes and functions imported by then
    assert collected
