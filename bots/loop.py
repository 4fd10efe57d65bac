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

The bot processes also set Python's cycle collector for a long-lived server (:func:`tune_gc`).
"""

from __future__ import annotations

import asyncio
import gc
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


GC_THRESHOLDS = (10_000, 10, 10)
"""The cycle collector's thresholds in a bot process (Python's own: 700, 10, 10)."""


def tune_gc() -> None:
    """Set the cycle collector for a bot process: what startup made is left out of it, and it runs
    after 10,000 net new objects instead of 700.

    Python's defaults suit a short script. In a bot under load the collector took a seventh of
    the process's time and found next to nothing to free: each answer allocates thousands of
    objects that live for a moment (the store's parsed files, HTTP exchanges), and every 700 net
    allocations it walked the young ones; the cached files that survive were promoted, which set
    off full passes over everything the process holds, imports included, several times a minute
    (``bench/telegram_bench.py``, 50 chats answered as fast as they can be, the last 15 s of 4,000
    answers, counted by a ``gc.callbacks`` hook: 1,106 collections taking 2.1 s, the longest
    169 ms; with this setting 6, taking 0.12 s, the longest 41 ms). Objects in reference cycles
    still get collected, later: an answer leaves none behind (``bots/live.py``), and peak memory
    did not change. ``gc.freeze`` moves what exists now (modules, classes, the libraries' tables)
    to a generation the collector never walks.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run(main: Coroutine[Any, Any, T], choice: str = "uvloop") -> T:
    """Run ``main`` to completion on a new loop of ``choice``, as :func:`asyncio.run` does."""
    name, factory = loop_factory(choice)
    log.info("event loop: %s", name)
    tune_gc()
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
