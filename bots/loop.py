"""The event loop ``ferry telegram`` and ``ferry signal`` run on: uvloop's where it is installed.

A bot process is one event loop doing everything a turn needs: the messenger's HTTP calls, the
model's stream, and since issue 14 the store's reads and journal appends. Under load its CPU goes
as much to the loop's own machinery (scheduling callbacks, socket reads and writes through the
transports) as to any one part of Ferry. uvloop runs that machinery in C on libuv. With it the
Telegram bench (``bench/telegram_bench.py``, 50 chats, answered as fast as the bot can, on two
cores) needed 3.8-3.9 ms of the bot's CPU an answer instead of 4.1-4.4 ms, and answered 290-293
a second instead of 261-275.

``FERRY_EVENT_LOOP=asyncio`` runs asyncio's own loop instead (to rule the loop out when chasing a
problem). Where uvloop is not installed (it has no Windows build) asyncio's loop runs anyway.
The other commands (the console chat, imports, admin) keep asyncio's loop: they are not under load.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def loop_factory(choice: str) -> tuple[str, Callable[[], asyncio.AbstractEventLoop] | None]:
    """The loop to run for ``choice`` (``FERRY_EVENT_LOOP``: uvloop or asyncio): its name, and how
    to make it (None: asyncio's own)."""
    if choice == "uvloop":
        try:
            import uvloop
        except ImportError:
            return "asyncio (uvloop is not installed)", None
        return f"uvloop {uvloop.__version__}", uvloop.new_event_loop
    return "asyncio", None


def run(main: Coroutine[Any, Any, T], choice: str = "uvloop") -> T:
    """Run ``main`` to completion on a new loop of ``choice``, as :func:`asyncio.run` does."""
    name, factory = loop_factory(choice)
    log.info("event loop: %s", name)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
