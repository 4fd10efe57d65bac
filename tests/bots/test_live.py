"""The live-answer helpers (bots/live.py) leave no reference cycle with the view that owns them."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from bots.live import Throttle, TypingLoop


@pytest.fixture
def no_cycle_collector() -> Iterator[None]:
    """Only reference counting frees objects meanwhile: what is left is held by a cycle."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class View:
    """A reply view as the adapters have one: it keeps its helpers, they are given its methods."""

    def __init__(self) -> None:
        self.typed = 0
        self.shown: list[str] = []
        self.typing = TypingLoop(self._send_typing, 0.01)
        self.preview = Throttle(self._show, lambda: 0.01 * (1 + len(self.shown)), "preview", delay=self._delay)

    async def _send_typing(self) -> None:
        self.typed += 1

    async def _show(self, text: str) -> None:
        self.shown.append(text)

    def _delay(self) -> float:
        return 0.0


async def test_a_view_is_freed_once_its_answer_is_shown(no_cycle_collector: None) -> None:
    view = View()
    view.typing.start()
    view.preview.start()
    view.preview.update("Hel")
    await asyncio.sleep(0.05)
    view.preview.end("Hello")
    await view.preview.close()
    await view.typing.stop()
    assert view.typed >= 1 and view.shown == ["Hel"]
    assert view.preview.interval == pytest.approx(0.02)  # still answers, from the last value
    gone = weakref.ref(view)
    del view
    assert gone() is None


async def test_a_typing_loop_whose_view_is_gone_stops(no_cycle_collector: None) -> None:
    view = View()
    typing = view.typing
    typing.start()
    await asyncio.sleep(0.02)
    del view  # an answer abandoned without stopping its typing (a cancelled task)
    await asyncio.wait_for(typing.stop(), 1)


async def test_a_typing_loop_restarts_after_a_stop() -> None:
    """A reply types again for its next event (a notice after the answer, say)."""
    view = View()
    view.typing.start()
    await view.typing.stop()
    before = view.typed
    view.typing.start()
    await asyncio.sleep(0.03)
    await view.typing.stop()
    assert view.typed > before


async def test_a_plain_function_is_kept() -> None:
    sent: list[int] = []

    async def send() -> None:
        sent.append(1)

    typing = TypingLoop(send, 0.01)
    typing.start()
    await asyncio.sleep(0.03)
    await typing.stop()
    assert sent
