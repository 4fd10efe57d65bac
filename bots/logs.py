"""Log lines that cannot flood the log: the same problem is written at most once per interval.

A Bot API server that refuses every poll, or a signal-cli-rest-api that is down, would otherwise
write one line per retry for as long as it lasts (issue 11 saw 4 MB/s). Each kind of line is
written the first time, then at most once per ``interval`` seconds with the number of repeats
left out in between. Callers pass ids and exception types only, never message content.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class Throttled:
    """One logger whose lines are rate-limited per ``kind`` (a short name for the problem)."""

    def __init__(
        self, log: logging.Logger, interval: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.log = log
        self.interval = interval
        self.clock = clock
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def __call__(self, level: int, kind: str, msg: str, *args: object) -> bool:
        """Log ``msg % args`` unless a ``kind`` line was written less than ``interval`` ago.

        Returns whether the line was written. A written line says how many were left out before it.
        """
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._skipped[kind] = self._skipped.get(kind, 0) + 1
            return False
        self._last[kind] = now
        skipped = self._skipped.pop(kind, 0)
        if skipped:
            msg += " (%d more like this since the last such line)"
            args = (*args, skipped)
        self.log.log(level, msg, *args)
        return True

    def reset(self, kind: str) -> None:
        """The problem is over: its next occurrence is written at once."""
        self._last.pop(kind, None)
        self._skipped.pop(kind, None)
