"""Day/month order for an export in which no day is above 12, from every other signal in the file.

Such files are common (a short US chat, ``3/4/26, 9:15 PM`` … ``3/9/26, 7:02 AM``) and both
readings run forward in time, so the order of dates alone cannot decide. The file still says
a lot: how its clock is written (``PM`` upper case with a 12-hour clock is the US way; ``pm``
lower case is British, Indian, Australian; a 24-hour clock is almost never month-first), its
senders' phone numbers (+1 is North America), its language (non-English exports are day-first),
the span and gaps each reading implies (a week of March is likelier than March to September for
a chat of a few dozen messages), and dates after the file's own time, which cannot be.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING

from core.types import Button

if TYPE_CHECKING:
    from core.i18n import Texts
    from core.whatsapp.parser import ParsedChat

_PHONE = re.compile(r"^\u200e?\+(\d{1,3})[\s\-\u00a0(]")
_ENGLISH = re.compile(r"end-to-end encrypted|Media omitted|This message was deleted|image omitted|Missed voice", re.I)
_MONTH_FIRST_CODES = ("1", "63")  # North America (NANP), the Philippines


def _dates(firsts: Sequence[tuple[int, int, int]], month_first: bool) -> list[date] | None:
    out: list[date] = []
    for a, b, y in firsts:
        month, day = (a, b) if month_first else (b, a)
        try:
            out.append(date(y, month, day))
        except ValueError:
            return None
    return out


def _spread(days: list[date]) -> float:
    """How scattered the dates are: the sum of log(1 + gap in days) between consecutive dates."""
    return sum(math.log1p(abs((b - a).days)) for a, b in itertools.pairwise(days))


def month_first_votes(
    dates: Sequence[tuple[int, int, int]],
    ampm_tokens: Sequence[str],
    senders: Sequence[str],
    text_sample: str,
    not_after: datetime | None = None,
) -> int:
    """Positive: the evidence says month first; negative: day first; 0: no evidence.

    ``dates`` are the (first field, second field, year) of each header in file order,
    ``ampm_tokens`` the raw AM/PM marks ("" for a 24-hour header), ``senders`` the message
    senders, ``text_sample`` some of the export's text (for its language), ``not_after`` the
    file's own time (its modification time): no message can be later.
    """
    mdy, dmy = _dates(dates, True), _dates(dates, False)
    if mdy is None or dmy is None:
        return 0 if mdy is None and dmy is None else (5 if dmy is None else -5)
    return (
        _future_votes(mdy, dmy, not_after)
        + _spread_votes(mdy, dmy)
        + _clock_votes(ampm_tokens)
        + _phone_votes(senders)
        + _language_votes(text_sample)
    )


def _future_votes(mdy: list[date], dmy: list[date], not_after: datetime | None) -> int:
    """Against the reading whose last date is after the file's own time (only one of them)."""
    if not_after is None:
        return 0
    limit = not_after.date()
    mdy_future, dmy_future = mdy[-1] > limit if mdy else False, dmy[-1] > limit if dmy else False
    if mdy_future == dmy_future:
        return 0
    return -4 if mdy_future else 4


def _spread_votes(mdy: list[date], dmy: list[date]) -> int:
    """The span and gaps each reading implies: prefer the compact one when it clearly is."""
    a, b = _spread(mdy), _spread(dmy)
    if abs(a - b) <= 1.0:
        return 0
    return 2 if a < b else -2


def _clock_votes(ampm_tokens: Sequence[str]) -> int:
    """Upper-case AM/PM is the US way; lower case, or a 24-hour clock, is not."""
    tokens = [t for t in ampm_tokens if t]
    if not tokens:
        return -1  # a 24-hour clock: month-first locales use 12 hours
    upper = sum(1 for t in tokens if t.strip(". ").isupper())
    return 1 if upper * 2 > len(tokens) else -1


def _phone_votes(senders: Sequence[str]) -> int:
    """Senders written as phone numbers, all from month-first countries or not."""
    codes = [m.group(1) for s in senders if (m := _PHONE.match(s))]
    if not codes:
        return 0
    return 2 if all(c in _MONTH_FIRST_CODES for c in codes) else -2


def _language_votes(text_sample: str) -> int:
    """Too few words say nothing about the language; enough of them without English ones do."""
    if len(text_sample.split()) < 40 or _ENGLISH.search(text_sample):
        return 0
    return 0 if re.search(r"\b(the|and|you|is|to)\b", text_sample, re.I) else -1


def date_order_note(texts: Texts, lang: str, chat: ParsedChat) -> str:
    """A line for the preview saying how the dates were read, when that was a guess ("" otherwise)."""
    if not chat.date_order_ambiguous or chat.date_order == "ymd" or not chat.messages:
        return ""
    example = chat.messages[0].timestamp.date()  # formatted for the language by Texts
    key = "import13.read_month_first" if chat.date_order == "mdy" else "import13.read_day_first"
    return "\n\n" + texts.get(lang, key, example=example)


def date_order_choice(texts: Texts, lang: str, chat: ParsedChat) -> tuple[tuple[Button, ...], ...]:
    """The preview button that reads the dates the other way round (none when they were not a guess)."""
    if not chat.date_order_ambiguous or chat.date_order == "ymd" or not chat.messages:
        return ()
    key = "import13.flip_to_day_first" if chat.date_order == "mdy" else "import13.flip_to_month_first"
    return ((Button(texts.get(lang, key), "wa:order"),),)
