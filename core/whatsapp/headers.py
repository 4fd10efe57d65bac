"""Recognising the message headers of a WhatsApp export ("12/03/2024, 21:15 - ", "[3/12/24, 9:15:02 PM] ").

The first pass of :mod:`core.whatsapp.parser`: each header line starts a :class:`Block`, and the
lines after it until the next header are its continuation. Dates are not read here: the order of
day and month is decided later from the whole file (:mod:`core.whatsapp.dates`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

DateOrder = Literal["dmy", "mdy", "ymd"]
Platform = Literal["android", "ios"]


# Directional and other invisible marks WhatsApp sprinkles over headers, names and placeholders.
# ZWJ/ZWNJ (U+200D/U+200C) are kept: they are part of emoji and of names.
INVISIBLE = "\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff\u061c"
SPACES = "\u00a0\u202f\u2009\u2007\u2002\u2003"
PROBE_TABLE = str.maketrans(
    {**{ch: None for ch in INVISIBLE}, **{ch: " " for ch in SPACES}, "\u060c": ","}  # Arabic comma
)
# Longest header seen ("05/01/2021, 3:07 in the afternoon - ", Arabic with marks) is well below this;
# only this prefix of a line is normalised, so long message lines cost nothing extra.
_PROBE_LEN = 80

_HEADER_RE = re.compile(
    r"""^
    [\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff\u061c]*   # marks and stray BOMs before a header
    (?P<br>\[)?
    (?P<d1>\d{1,4})(?P<sep>[./-])\s?(?P<d2>\d{1,2})(?P=sep)\s?(?P<d3>\d{1,4})\.?
    (?:\s?BE)?                                   # Thai Buddhist era on iOS
    (?:[,،]\s?|\s)                              # ", ", " ", Arabic comma
    (?:(?:klo|um|à|at|lúc|a\slas|kl\.)\s)?       # locale words between date and time
    (?:(?P<pre>오전|오후|上午|下午|午前|午後)\s?)?   # markers written before the time
    (?P<h>\d{1,2})[:.](?P<mi>\d{2})(?:[:.](?P<s>\d{2}))?
    (?:\s?(?P<ampm>[^\W\d_]+\.?(?:\s?[^\W\d_]+\.?){0,3}))?
    (?P<end>(?(br)\]\s|(?(ampm)(?:\s[-–]\s|:\s)|\s[-–]\s)))  # "] ", " - ", old iOS "PM: "
    (?P<rest>.*)$""",
    re.VERBOSE,
)
# Lines holding any of these need the slow, normalised probe; most lines hold none.
SPECIAL_RE = re.compile("[" + INVISIBLE + SPACES + "\u060c]")


@dataclass(slots=True)
class Block:
    """A header line and the continuation lines after it, before dates are resolved."""

    fields: tuple[str, ...]  # d1, d2, d3, hour, minute, second, am/pm token (see _FIELDS)
    style: str  # "bracket" (iOS), "dash" (Android) or "colon" (iOS before 2017)
    raw: str
    raw_rest: str
    line: int
    lines: list[str]


_FIELDS = ("d1", "d2", "d3", "h", "mi", "s", "ampm", "pre", "br", "end")


def _raw_offset(raw: str, probe_pos: int) -> int:
    """Map a position in the probe (marks deleted) back to the raw line."""
    kept = 0
    for i, ch in enumerate(raw):
        if kept == probe_pos:
            return i
        if ch not in INVISIBLE:
            kept += 1
    return len(raw)


def _match(line: str) -> tuple[re.Match[str], str] | None:
    """The header match of a line that may be a header, and the raw text after the header."""
    m = _HEADER_RE.match(line)
    if m is not None:
        return m, line[m.start("rest") :]
    if SPECIAL_RE.search(line, 0, _PROBE_LEN) is None:
        return None
    # Marks inside the date (Arabic RLM) or an Arabic comma: match a normalised copy of the prefix.
    m = _HEADER_RE.match(line[:_PROBE_LEN].translate(PROBE_TABLE))
    if m is None:
        return None
    return m, line[_raw_offset(line, m.start("rest")) :]


def match_header(line: str) -> re.Match[str] | None:
    """Return the header match of one export line, or None for a continuation line."""
    found = _match(line) if _may_be_header(line) else None
    return found[0] if found else None


def looks_like_export(text: str, probe_lines: int = 20) -> bool:
    """True when one of the first non-empty lines is a WhatsApp message header."""
    seen = 0
    start = 0
    # Walk line by line with find(): splitting a large text just to look at its head would copy it.
    while seen < probe_lines and start <= len(text):
        end = text.find("\n", start)
        if end == -1:
            end = len(text)
        line = text[start:end].rstrip("\r")
        start = end + 1
        if not line.strip():
            continue
        if match_header(line):
            return True
        seen += 1
    return False


def _style(br: str | None, end: str) -> str:
    if br:
        return "bracket"
    return "dash" if end.strip() in ("-", "–") else "colon"


def _may_be_header(line: str) -> bool:
    """Cheap test before the regex: a header starts with "[", a digit or an invisible mark."""
    first = line[:1]
    return bool(first) and (first == "[" or first.isdigit() or first in INVISIBLE)


def scan_blocks(text: str) -> list[Block]:
    """Every header line of ``text`` as a :class:`Block` holding the lines that follow it.

    Lines before the first header belong to no block and are dropped.
    """
    if "\r" in text and "\n" not in text:
        text = text.replace("\r", "\n")  # bare CR line ends; CRLF is handled per line below
    blocks: list[Block] = []
    current: list[str] | None = None
    # Splitting on "\n" only: str.splitlines() would also split inside messages at U+2028, U+0085…
    # CRLF is trimmed per line rather than by replacing in the whole text, which can be a 4-byte
    # per character string of tens of MB once a single emoji is in it.
    for number, line in enumerate(text.split("\n"), 1):
        if line.endswith("\r"):
            line = line[:-1]
        found = _match(line) if _may_be_header(line) else None
        if found is None:
            if current is not None:
                current.append(line)
            continue
        m, raw_rest = found
        d1, d2, d3, h, mi, sec, ampm, pre, br, end = m.group(*_FIELDS)
        current = []
        fields = (d1, d2, d3, h, mi, sec or "", ampm or pre or "")
        blocks.append(Block(fields, _style(br, end), line, raw_rest, number, current))
    return blocks
