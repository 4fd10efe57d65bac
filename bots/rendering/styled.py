"""Text plus style ranges: what the one Markdown walker produces and every messenger encodes.

Offsets are Python string indexes (code points) while text is built; :meth:`Styled.utf16`
gives them in UTF-16 code units, the unit in which Telegram and Signal count.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Style = Literal["bold", "italic", "strike", "underline", "spoiler", "code", "pre", "link", "quote"]
"""A text style. ``pre`` carries the code block's language and ``link`` its URL as the value."""

FORMATTING: frozenset[str] = frozenset({"bold", "italic", "strike", "underline", "spoiler"})
"""Styles that only change how text looks (Telegram lets none of them overlap code)."""


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (an emoji outside the BMP counts 2)."""
    # "surrogatepass": a lone surrogate in odd input counts 1 instead of raising.
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def utf16_offsets(text: str) -> list[int]:
    """For every index ``i`` of ``text`` (and its end), the UTF-16 units before it."""
    offsets = [0]
    for ch in text:
        offsets.append(offsets[-1] + (2 if ord(ch) > 0xFFFF else 1))
    return offsets


@dataclass(frozen=True, slots=True)
class Span:
    """One style over ``text[start:end]``; ``value`` is a code block's language or a link's URL."""

    start: int
    end: int
    style: Style
    value: str = ""

    def covers(self, start: int, end: int) -> bool:
        """Whether some of ``text[start:end]`` is inside this span."""
        return min(self.end, end) > max(self.start, start)


@dataclass(frozen=True)
class Styled:
    """Plain text and its style ranges.

    Spans are kept outermost first (the order they open in), so for any character the spans
    covering it, in list order, are its elements from the outside in.
    """

    text: str = ""
    spans: tuple[Span, ...] = ()

    def __add__(self, other: Styled) -> Styled:
        return join((self, other))

    def wrap(self, style: Style, value: str = "") -> Styled:
        """This text inside one more (outer) style; empty text stays empty and unstyled."""
        if not self.text:
            return self
        return Styled(self.text, (Span(0, len(self.text), style, value), *self.spans))

    def plain(self) -> Styled:
        """The text without its styles."""
        return Styled(self.text)

    def indented(self, first: str, rest: str) -> Styled:
        """``first`` before the text and ``rest`` after each of its line breaks, styles kept in place."""
        moved = [len(first)]
        for ch in self.text:
            moved.append(moved[-1] + 1 + (len(rest) if ch == "\n" else 0))
        # An end offset counts the indent after a line break the span ends with: it stays inside.
        spans = tuple(Span(moved[s.start], moved[s.end], s.style, s.value) for s in self.spans)
        return Styled(first + self.text.replace("\n", "\n" + rest), spans)

    def slice(self, start: int, end: int) -> Styled:
        """``text[start:end]`` with the spans clipped to it (spans left empty are dropped)."""
        spans = tuple(
            Span(max(s.start, start) - start, min(s.end, end) - start, s.style, s.value)
            for s in self.spans
            if s.covers(start, end)
        )
        return Styled(self.text[start:end], spans)

    def rstrip(self) -> Styled:
        """Trailing whitespace removed, spans clipped to what is left."""
        return self.slice(0, len(self.text.rstrip()))

    def stacks(self) -> list[tuple[int, ...]]:
        """For every character, the indexes of the spans covering it, outermost first."""
        out: list[tuple[int, ...]] = []
        for start, end, stack in self.runs():
            out += [stack] * (end - start)
        return out

    def runs(self) -> list[tuple[int, int, tuple[int, ...]]]:
        """``(start, end, stack)`` for each stretch of text between span edges (none empty): the
        indexes of the spans covering it, outermost first. Swept edge by edge, not character by
        character (a long answer's every character was a list, then a tuple)."""
        opening: dict[int, list[int]] = {}
        closing: dict[int, list[int]] = {}
        for k, span in enumerate(self.spans):
            if span.end > span.start:
                opening.setdefault(span.start, []).append(k)
                closing.setdefault(span.end, []).append(k)
        edges = sorted({0, len(self.text), *opening, *closing})
        out: list[tuple[int, int, tuple[int, ...]]] = []
        covering: set[int] = set()
        for start, end in itertools.pairwise(edges):
            covering.difference_update(closing.get(start, ()))
            covering.update(opening.get(start, ()))
            out.append((start, end, tuple(sorted(covering))))
        return out

    def utf16(self) -> list[tuple[int, int, Span]]:
        """``(offset, length, span)`` of the non-empty spans in UTF-16 units, in text order.

        These are the units of Telegram's ``entities`` and of Signal's text styles.
        """
        offsets = utf16_offsets(self.text)
        return [
            (offsets[s.start], offsets[s.end] - offsets[s.start], s)
            for s in sorted(self.spans, key=lambda s: (s.start, -s.end))
            if s.end > s.start
        ]


def join(pieces: Sequence[Styled]) -> Styled:
    """The pieces one after the other."""
    texts: list[str] = []
    spans: list[Span] = []
    shift = 0
    for piece in pieces:
        texts.append(piece.text)
        spans.extend(Span(s.start + shift, s.end + shift, s.style, s.value) for s in piece.spans)
        shift += len(piece.text)
    return Styled("".join(texts), tuple(spans))
