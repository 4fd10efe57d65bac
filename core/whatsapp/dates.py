"""Reading the dates of an export's headers: deciding the day/month order, then making timestamps.

The order (day/month/year, month/day/year or year/month/day) is decided once from the whole
file, never line by line: a day above 12 settles it; otherwise the direction the dates run and
every other signal the file has (:mod:`core.whatsapp.dateorder`) weigh in.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from core.whatsapp.dateorder import month_first_votes
from core.whatsapp.headers import Block, DateOrder

# Words used as AM/PM, normalised by _ampm_key (casefolded, dots and spaces removed).
_AM = frozenset({"am", "inthemorning", "ص", "上午", "午前", "오전", "πμ", "vorm", "sa", "fm", "de", "pg"})
_PM = frozenset(
    {
        "pm",
        "intheafternoon",
        "intheevening",
        "atnight",
        "م",
        "下午",
        "午後",
        "오후",
        "μμ",
        "nachm",
        "ch",
        "em",
        "du",
        "ptg",
        "noon",
    }
)


def _ampm_key(token: str) -> str:
    return "".join(token.casefold().replace(".", "").split())


def decide_order(
    blocks: Sequence[Block], hint: DateOrder | None, default: DateOrder | None, not_after: datetime | None = None
) -> tuple[DateOrder, bool]:
    """The date order of the headers, and whether it was a guess (no day above 12 settled it)."""
    if hint is not None:
        return hint, False
    if not blocks:
        return default or "dmy", True
    return _settled_order(blocks) or _guessed_order(blocks, default, not_after)


def _settled_order(blocks: Sequence[Block]) -> tuple[DateOrder, bool] | None:
    """The order a four-digit year first or a field above 12 gives, or None when neither does."""
    four_first = sum(1 for b in blocks if len(b.fields[0]) >= 3)
    if four_first * 2 > len(blocks):
        return "ymd", False
    first_big = sum(1 for b in blocks if int(b.fields[0]) > 12)
    second_big = sum(1 for b in blocks if int(b.fields[1]) > 12)
    if first_big and not second_big:
        return "dmy", False
    if second_big and not first_big:
        return "mdy", False
    if first_big and second_big:  # stray spoofed lines: trust the majority, but say so
        return ("dmy" if first_big >= second_big else "mdy"), True
    return None


def _backward_votes(blocks: Sequence[Block]) -> int:
    """+6 when dates run backwards more often read day first, -6 when month first, 0 on a tie."""
    back = {"dmy": 0, "mdy": 0}
    prev: dict[str, tuple[int, int, int]] = {}
    for b in blocks:
        a, c, y = int(b.fields[0]), int(b.fields[1]), int(b.fields[2])
        for order, key in (("dmy", (y, c, a)), ("mdy", (y, a, c))):
            if order in prev and key < prev[order]:
                back[order] += 1
            prev[order] = key
    return 0 if back["dmy"] == back["mdy"] else (6 if back["dmy"] > back["mdy"] else -6)


def _guessed_order(
    blocks: Sequence[Block], default: DateOrder | None, not_after: datetime | None
) -> tuple[DateOrder, bool]:
    """No day above 12 anywhere: prefer the order under which dates run forward more often,
    then every other signal the file has (see core.whatsapp.dateorder)."""
    votes = _backward_votes(blocks)
    sample = [b.raw_rest for b in blocks[:300]]
    votes += month_first_votes(
        [(int(b.fields[0]), int(b.fields[1]), _year(b.fields[2])) for b in blocks],
        [b.fields[6] for b in blocks],
        sample,
        "\n".join(sample),
        not_after,
    )
    votes += {"mdy": 3, "dmy": -3}.get(default or "", 0)
    return ("mdy" if votes > 0 else "dmy" if votes < 0 else default or "dmy"), True


def _year(text: str) -> int:
    y = int(text)
    if len(text) <= 2:
        return 2000 + y
    if y >= 2400:  # Thai Buddhist era
        return y - 543
    return y


def _date(d1: str, d2: str, d3: str, order: DateOrder) -> tuple[int, int, int]:
    if order == "ymd":
        return _year(d1), int(d2), int(d3)
    if order == "dmy":
        return _year(d3), int(d2), int(d1)
    return _year(d3), int(d1), int(d2)


class Clock:
    """Turns header fields into datetimes, caching the parts that repeat across a chat."""

    def __init__(self, order: DateOrder) -> None:
        self.order: DateOrder = order
        self.dates: dict[tuple[str, str, str], tuple[int, int, int]] = {}
        self.shifts: dict[str, str] = {}

    def timestamp(self, fields: tuple[str, ...]) -> datetime:
        d1, d2, d3, h, mi, sec, token = fields
        key = (d1, d2, d3)
        ymd = self.dates.get(key)
        if ymd is None:
            ymd = self.dates[key] = _date(d1, d2, d3, self.order)
        hour = int(h)
        if token:
            shift = self.shifts.get(token)
            if shift is None:
                k = _ampm_key(token)
                shift = self.shifts[token] = "pm" if k in _PM else "am" if k in _AM else ""
            # Real files hold "23:59 PM" and "00:04 AM": only shift hours that are 12-hour values.
            if shift == "pm" and hour < 12:
                hour += 12
            elif shift == "am" and hour == 12:
                hour = 0
        return datetime(ymd[0], ymd[1], ymd[2], hour, int(mi), int(sec) if sec else 0)
