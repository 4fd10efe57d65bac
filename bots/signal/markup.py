"""Signal text styles as signal-cli-rest-api's ``styled`` markup (``text_mode: styled``).

``/v2/send`` has no field for style ranges: the server re-parses markup instead. This writes
the ranges :func:`bots.signal.render.render_signal` made as markup that parses back to exactly
the same text and (a subset of) the same ranges.
"""

from __future__ import annotations

from collections.abc import Sequence

from bots.signal.render import BOLD, ITALIC, MONOSPACE, SPOILER, STRIKETHROUGH

# signal-cli-rest-api's "styled" text mode (utils/textstyleparser.go, 0.96 and later): a
# backslash before "*", "`", "|" or "~" makes it literal, and properly nested styles work
# (a stack of open markers). A backslash cannot itself be escaped, and runs of asterisks are
# read greedily ("***" is bold and italic at once), so a few adjacencies cannot be written:
# the later style is then left out (its text stays, unstyled).
_BOLD_ITALIC = "BOLD_ITALIC"  # the server's "***" token: both styles over one range
_MARKERS = {BOLD: "**", ITALIC: "*", STRIKETHROUGH: "~", MONOSPACE: "`", SPOILER: "||", _BOLD_ITALIC: "***"}
MARKUP_CHARACTERS = frozenset("*~`|")
_Range = tuple[int, int, str]


def _escape(text: str) -> str:
    return "".join("\\" + ch if ch in MARKUP_CHARACTERS else ch for ch in text)


def _index_ranges(text: str, styles: Sequence[str]) -> list[_Range]:
    """The ranges as string indexes, properly nested (a range crossing another is left out)."""
    index_of: dict[int, int] = {}
    units = 0
    for i, ch in enumerate(text):
        index_of[units] = i
        units += 2 if ord(ch) > 0xFFFF else 1
    index_of[units] = len(text)
    ranges: list[_Range] = []
    for spec in styles:
        start_s, length_s, style = spec.split(":", 2)
        start, end = int(start_s), int(start_s) + int(length_s)
        if end > start and style in _MARKERS and start in index_of and end in index_of:
            ranges.append((index_of[start], index_of[end], style))
    # Markers around blank text would not survive as a range.
    return _nested(_bold_italic([r for r in ranges if text[r[0] : r[1]].strip()]))


def _bold_italic(ranges: list[_Range]) -> list[_Range]:
    """Bold and italic over one range become the server's single bold-and-italic token."""
    spans = {style: {(b, e) for b, e, s in ranges if s == style} for style in (BOLD, ITALIC)}
    both = spans[BOLD] & spans[ITALIC]
    kept = [r for r in ranges if (r[0], r[1]) not in both or r[2] not in (BOLD, ITALIC)]
    return kept + [(b, e, _BOLD_ITALIC) for b, e in both]


def _nested(ranges: list[_Range]) -> list[_Range]:
    """Outer ranges before inner ones; a range crossing its parent, or repeating the parent's
    style (the server would read its opening marker as the parent's end), is left out."""
    ranges.sort(key=lambda r: (r[0], -r[1]))
    kept: list[_Range] = []
    open_: list[_Range] = []
    for r in ranges:
        while open_ and open_[-1][1] <= r[0]:
            open_.pop()
        parent = open_[-1] if open_ else None
        if parent is not None and (r[1] > parent[1] or parent[2] == r[2]):
            continue
        kept.append(r)
        open_.append(r)
    return kept


def _write(text: str, ranges: Sequence[_Range]) -> tuple[str, int | None]:
    """The markup, and the index of a range whose marker the server would misread (or None)."""
    # At one position: closes before opens; the inner range closes first and opens last.
    events: list[tuple[int, int, int, int]] = []  # (position, opens, order, range index)
    for k, (begin, end, _) in enumerate(ranges):
        events.append((begin, 1, k, k))
        events.append((end, 0, -k, k))
    events.sort()
    out: list[str] = []
    at = 0
    for position, _, _, k in events:
        out.append(_escape(text[at:position]))
        at = position
        marker = _MARKERS[ranges[k][2]]
        before = "".join(out[-2:])[-1:]
        if (before == "\\") or (before == marker[0] and marker[0] in "*|"):
            return "", k
        out.append(marker)
    out.append(_escape(text[at:]))
    return "".join(out), None


def styled_markup(text: str, styles: Sequence[str]) -> str:
    """``text`` with its style ranges written as signal-cli-rest-api's styled markup.

    Marker characters in the text are escaped; nested ranges are written nested. A range that
    crosses another, or whose marker would run into a neighbouring one, is left out.
    """
    ranges = _index_ranges(text, styles)
    while True:
        markup, bad = _write(text, ranges)
        if bad is None:
            return markup
        del ranges[bad]
