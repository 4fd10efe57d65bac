"""``/attach PATH [question]`` in ``ferry chat``: a local file goes through the same path as a file
sent on a messenger (voice notes, photos, documents), so all of it can be tried without one.

Only the terminal chat has it: the person at the terminal can read the files anyway. The file's
kind comes from its name (``mimetypes``); its size is checked before it is read.
"""

from __future__ import annotations

import mimetypes
import shlex
from pathlib import Path

from core.media import limits
from core.types import Attachment, FileLimit

TERMINAL = FileLimit("document", limits.DOCUMENT.size)
"""The terminal reads files up to the largest limit the core has for any kind."""
_VOICE_SUFFIXES = (".ogg", ".oga", ".opus")


def parse(line: str) -> tuple[str, str] | None:
    """``(path, question)`` for an ``/attach`` line (quote a path with spaces), else None."""
    stripped = line.strip()
    if not (stripped == "/attach" or stripped.startswith("/attach ")):
        return None
    try:
        words = shlex.split(stripped[len("/attach") :])
    except ValueError:
        words = stripped[len("/attach") :].split()
    if not words:
        return "", ""
    return words[0], " ".join(words[1:])


def kind_of(path: Path) -> tuple[str, str]:
    """The core's attachment kind and the MIME type for a file name."""
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix.lower() in _VOICE_SUFFIXES:
        return "voice", "audio/ogg"
    major = mime.split("/", 1)[0]
    if major == "image":
        return "photo", mime
    if major == "audio":
        return "audio", mime
    return "document", mime


def read(path_text: str) -> Attachment | None:
    """The file as an attachment (without data and with ``over_limit`` when too large); None when
    there is no such file."""
    path = Path(path_text).expanduser()
    if not path.is_file():
        return None
    kind, mime = kind_of(path)
    size = path.stat().st_size
    over = limits.over(kind, size, TERMINAL)
    data = None if over is not None else path.read_bytes()
    return Attachment(kind, path.name, mime, size, data, over_limit=over)
