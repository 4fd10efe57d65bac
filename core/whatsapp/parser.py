"""Parse the text of a WhatsApp "Export chat" file into messages and system lines.

Pure and standard-library only. One pass over the lines collects header candidates
(:mod:`core.whatsapp.headers`); the date order (day/month/year, month/day/year or year/month/day)
is then decided from the whole file, never line by line (:mod:`core.whatsapp.dates`), and the
messages are built in a second pass over the headers (:mod:`core.whatsapp.bodies`).

Timestamps are naive ``datetime`` values: the phone's local wall-clock time exactly as written in
the file. WhatsApp records no time zone, so attaching one here would be a guess.

Formats are described in ``shared/research/whatsapp-export.md``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from core.whatsapp.bodies import MediaKind, Message, SystemKind, SystemLine, build
from core.whatsapp.dates import Clock, decide_order
from core.whatsapp.headers import INVISIBLE, Block, DateOrder, Platform, looks_like_export, match_header, scan_blocks

__all__ = [
    "INVISIBLE",
    "DateOrder",
    "MediaKind",
    "Message",
    "ParsedChat",
    "Platform",
    "SystemKind",
    "SystemLine",
    "looks_like_export",
    "match_header",
    "parse_export",
]


@dataclass(frozen=True)
class ParsedChat:
    """The result of :func:`parse_export`.

    ``date_order_ambiguous`` is True when no date in the file had a day above 12, so the order
    came from the sequence of dates or the default; a caller should then show a preview.
    """

    messages: tuple[Message, ...]
    system: tuple[SystemLine, ...]
    senders: tuple[str, ...]  # distinct message senders, in order of first appearance
    date_order: DateOrder
    date_order_ambiguous: bool
    platform: Platform | None  # None when the text held no message header


def _main_style(blocks: list[Block]) -> str | None:
    """The header style most blocks have: the file's own; None for a text without headers."""
    return Counter(b.style for b in blocks).most_common(1)[0][0] if blocks else None


def _timestamp(clock: Clock, block: Block, style: str | None) -> datetime | None:
    """The block's time, or None when it is not a real header (another style, an impossible date)."""
    if block.style != style:
        return None
    try:
        return clock.timestamp(block.fields)
    except ValueError:
        return None


def _resolve(blocks: list[Block], clock: Clock, style: str | None) -> list[tuple[Block, datetime]]:
    """The blocks with their times; a line that only looked like a header goes back into the text before it."""
    resolved: list[tuple[Block, datetime]] = []
    for b in blocks:
        ts = _timestamp(clock, b, style)
        if ts is not None:
            resolved.append((b, ts))
        elif resolved:  # a continuation line that looks like a header: keep it as text
            prev = resolved[-1][0]
            prev.lines.append(b.raw)
            prev.lines.extend(b.lines)
    return resolved


def parse_export(
    text: str,
    *,
    date_order: DateOrder | None = None,
    default_order: DateOrder | None = None,
    not_after: datetime | None = None,
) -> ParsedChat:
    """Parse the decoded text of an export.

    ``date_order`` forces the order (for example after the user confirmed a preview);
    ``default_order`` (the person's locale, when known) weighs as much as the file's strongest
    signals and decides a tie (day first when not given); ``not_after`` is the
    file's own time (no message can be later), which helps decide an ambiguous order.
    """
    blocks = scan_blocks(text)
    style = _main_style(blocks)
    platform: Platform | None = None if style is None else ("android" if style == "dash" else "ios")
    order, ambiguous = decide_order([b for b in blocks if b.style == style], date_order, default_order, not_after)
    messages: list[Message] = []
    system: list[SystemLine] = []
    seen: dict[str, None] = {}
    names: dict[str, str] = {}
    for b, ts in _resolve(blocks, Clock(order), style):
        item = build(b, ts, platform or "android", names)
        if isinstance(item, Message):
            messages.append(item)
            seen.setdefault(item.sender, None)
        else:
            system.append(item)
    return ParsedChat(tuple(messages), tuple(system), tuple(seen), order, ambiguous, platform)
