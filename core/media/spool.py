"""The spool: a received file's bytes on disk in the data folder, from download until answered.

An adapter streams a file it fetches into ``DATA/spool/<platform>/`` instead of holding it in
memory (ten 20 MB documents at once would be hundreds of MB) and passes the path on in the
:class:`~core.types.Attachment`. The intake record names the file, so a process killed before
answering still has the attachment after the restart. The file is removed once the message is
answered (or turned out to be a duplicate); at start, files no unfinished record names that an
earlier run left are swept away.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable
from pathlib import Path

from core.types import Incoming

log = logging.getLogger(__name__)

SPOOL = "spool"
"""The folder in the data folder that holds the spools, one per messenger."""


class Spool:
    """One messenger's spool folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def of(cls, data_dir: Path, platform: str) -> Spool:
        """The spool of ``platform`` in the data folder."""
        return cls(data_dir / SPOOL / platform)

    def new_path(self, suffix: str = "") -> Path:
        """A fresh file name in the spool (the folder is made if needed; the file is not)."""
        self.root.mkdir(parents=True, exist_ok=True)
        safe = "".join(c for c in suffix[-12:] if c.isalnum() or c == ".")
        return self.root / f"{uuid.uuid4().hex}{safe}"

    def sweep(self, keep: Iterable[str], before: float) -> int:
        """Remove files older than ``before`` (epoch seconds) that ``keep`` does not name; how many."""
        kept = {os.path.realpath(p) for p in keep}
        removed = 0
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                if entry.is_file() and entry.stat().st_mtime < before and os.path.realpath(entry.path) not in kept:
                    os.unlink(entry.path)
                    removed += 1
            except OSError as exc:
                log.warning("could not remove spooled file %s: %s", entry.name, exc)
        return removed


def spooled(msg: Incoming) -> list[str]:
    """The spool files a message's attachments name."""
    return [a.path for a in msg.attachments if a.path]


def discard(msg: Incoming) -> None:
    """Remove the spool files of a message that needs them no more (never raises)."""
    for path in spooled(msg):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("could not remove spooled file %s: %s", os.path.basename(path), exc)
