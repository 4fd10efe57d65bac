"""Property: any conversation, written out in any supported export format, parses back unchanged.

A small formatter below writes each header variant the research lists (Android, iOS, old iOS;
d/m/y, m/d/y, y/m/d; 2- and 4-digit years; ``/ . -``; with or without comma; 24 h, dotted and
12 h clocks with their markers and spaces; Arabic-Indic digits; LRM prefixes; CRLF).

Message lines that are themselves complete headers are filtered out: no parser can tell such a
line from a new message (the spoofing risk the research describes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from core.whatsapp.parser import INVISIBLE, DateOrder, match_header, parse_export

CLOCKS: list[tuple[str, str] | None] = [
    None,
    ("AM", "PM"),
    ("am", "pm"),
    ("a.m.", "p.m."),
    ("a. m.", "p. m."),
    ("a.\u00a0m.", "p.\u00a0m."),
    ("in the morning", "in the evening"),
]
ARABIC_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


@dataclass(frozen=True)
class Fmt:
    shape: str  # "android", "ios" or "old_ios"
    order: DateOrder
    date_sep: str
    year4: bool
    pad: bool
    comma: bool
    clock: tuple[str, str] | None
    marker_space: str
    dotted_time: bool
    lrm: bool
    arabic: bool
    crlf: bool

    def header(self, ts: datetime) -> str:
        year = f"{ts.year:04d}" if self.year4 else f"{ts.year % 100:02d}"
        day = f"{ts.day:02d}" if self.pad else str(ts.day)
        month = f"{ts.month:02d}" if self.pad else str(ts.month)
        mark = "\u200f" if self.arabic else ""
        parts = {"dmy": (day, month, year), "mdy": (month, day, year), "ymd": (year, month, day)}[self.order]
        date = (mark + self.date_sep).join(parts)
        hour = ts.hour
        marker = ""
        if self.clock is not None:
            marker = self.marker_space + (self.clock[1] if hour >= 12 else self.clock[0])
            hour = hour % 12 or 12
        sep = "." if self.dotted_time else ":"
        clock = (f"{hour:02d}" if self.pad else str(hour)) + f"{sep}{ts.minute:02d}"
        if self.shape != "android":
            clock += f"{sep}{ts.second:02d}"
        if self.arabic:
            date, clock = date.translate(ARABIC_DIGITS), clock.translate(ARABIC_DIGITS)
        joiner = "، " if self.arabic else (", " if self.comma else " ")
        prefix = "\u200e" if self.lrm else ""
        if self.shape == "android":
            return f"{prefix}{date}{joiner}{clock}{marker} - "
        if self.shape == "ios":
            return f"{prefix}[{date}{joiner}{clock}{marker}] "
        return f"{date}, {clock}{marker}: "

    def notice(self, ts: datetime, other: str) -> str:
        text = "Messages and calls are end-to-end encrypted. Only people in this chat can read them."
        if self.shape == "android":
            return self.header(ts) + text
        return f"{self.header(ts)}{other}: \u200e{text}"


@st.composite
def formats(draw: st.DrawFn) -> Fmt:
    shape = draw(st.sampled_from(["android", "ios", "old_ios"]))
    order: DateOrder = draw(st.sampled_from(["dmy", "mdy", "ymd"]))
    clock = draw(st.sampled_from(CLOCKS))
    if shape == "old_ios" and clock is None:
        clock = ("AM", "PM")  # the 2016 iOS shape is only attested with a 12-hour clock
    arabic = shape == "ios" and order != "ymd" and draw(st.booleans())
    if arabic and clock is not None:
        clock = ("ص", "م")
    return Fmt(
        shape=shape,
        order=order,
        date_sep=draw(st.sampled_from(["/", ".", "-"])),
        year4=order == "ymd" or draw(st.booleans()),
        pad=draw(st.booleans()),
        comma=draw(st.booleans()),
        clock=clock,
        marker_space=draw(st.sampled_from([" ", "\u202f", "\u00a0"])),
        dotted_time=shape != "old_ios" and draw(st.booleans()),
        lrm=shape != "old_ios" and draw(st.booleans()),
        arabic=arabic,
        crlf=draw(st.booleans()),
    )


_BAD = INVISIBLE + "\r\n\x85\u2028\u2029"
names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters=_BAD),
    min_size=1,
    max_size=20,
).filter(
    lambda s: s == s.strip() and ": " not in s and not s.startswith("~") and not any(c in s for c in "\u00a0\u202f")
)
TRICKY_LINES = [
    "12/01/2024 was a Friday",
    "1. First point",
    "2. Second point: 13/01/2024",
    "2024-01-12: release day",
    "14:03 - lunch",
    "13.45 tadi",
    "[note] 12.01.24",
    "12/01/2024, 14:03 no dash here",
    "",
    "- a list item",
    "👩‍💻🚀 emoji with ZWJ",
]
lines = st.one_of(
    st.text(
        alphabet=st.characters(codec="utf-8", blacklist_characters=_BAD),
        max_size=40,
    ),
    st.sampled_from(TRICKY_LINES),
)
texts = (
    st.lists(lines, min_size=1, max_size=5)
    .map(lambda ls: "\n".join(ls).strip())
    .filter(lambda t: bool(t) and t != "null" and not t.startswith(tuple(INVISIBLE)))
)
timestamps = st.datetimes(min_value=datetime(2010, 1, 1), max_value=datetime(2030, 12, 31)).map(
    lambda d: d.replace(microsecond=0)
)


@st.composite
def conversations(draw: st.DrawFn) -> tuple[Fmt, list[tuple[datetime, str, str]]]:
    fmt = draw(formats())
    people = draw(st.lists(names, min_size=1, max_size=3, unique=True))
    msgs = draw(st.lists(st.tuples(timestamps, st.sampled_from(people), texts), min_size=1, max_size=12))
    if fmt.shape == "android":
        msgs = [(ts.replace(second=0), who, text) for ts, who, text in msgs]
    return fmt, msgs


def render(fmt: Fmt, msgs: list[tuple[datetime, str, str]], other: str) -> str:
    out = [fmt.notice(msgs[0][0], other)]
    out += [f"{fmt.header(ts)}{who}: {text}" for ts, who, text in msgs]
    nl = "\r\n" if fmt.crlf else "\n"
    return nl.join(out) + nl


@settings(max_examples=300, deadline=None)
@given(conversations())
def test_any_conversation_round_trips(conv: tuple[Fmt, list[tuple[datetime, str, str]]]) -> None:
    fmt, msgs = conv
    for _, _, text in msgs:
        assume(all(match_header(line) is None for line in text.split("\n")[1:]))
    text = render(fmt, msgs, msgs[0][1])
    has_evidence = fmt.order == "ymd" or any(ts.day > 12 for ts, _, _ in msgs)

    chat = parse_export(text)
    if has_evidence:
        assert chat.date_order == fmt.order
        assert not chat.date_order_ambiguous
    else:
        assert chat.date_order_ambiguous
        chat = parse_export(text, date_order=fmt.order)  # what the caller does after a preview

    assert [(m.timestamp, m.sender, m.text) for m in chat.messages] == msgs
    assert chat.senders == tuple(dict.fromkeys(who for _, who, _ in msgs))
    assert [s.kind for s in chat.system] == ["encryption"]
    assert chat.platform == ("android" if fmt.shape == "android" else "ios")
