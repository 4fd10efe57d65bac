"""The model's pump starts at once where Python can (3.12's eager tasks): its request leaves in the
turn's own step instead of after every other ready callback."""

from __future__ import annotations

import asyncio
import sys

from core.answering import start_now


async def test_a_task_started_now_takes_its_first_step_in_the_callers_step() -> None:
    steps: list[str] = []

    async def pump() -> None:
        steps.append("request sent")
        await asyncio.sleep(0)
        steps.append("first piece read")

    others: list[str] = []
    asyncio.get_running_loop().call_soon(others.append, "another turn's step")
    task = start_now(pump())
    if sys.version_info >= (3, 12):
        assert steps == ["request sent"] and others == []
    else:  # no eager tasks: the first step waits for the loop's next round, as create_task's does
        assert steps == []
    await task
    assert steps == ["request sent", "first piece read"] and others == ["another turn's step"]


async def test_a_pump_that_fails_in_its_first_step_fails_its_task() -> None:
    async def pump() -> None:
        raise RuntimeError("refused")

    task = start_now(pump())
    await asyncio.wait([task])
    assert isinstance(task.exception(), RuntimeError)
