"""Style ranges ↔ the HTML of Telegram's ``parse_mode=HTML``.

:func:`encode` writes a :class:`~bots.rendering.Styled` as balanced HTML using only tags
Telegram knows, every other character escaped; :func:`decode` reads such HTML back into
ranges (what splitting an already rendered message needs).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from html.parser import HTMLParser

from bots.rendering import FORMATTING, Span, Style, Styled

ALLOWED_TAGS = frozenset(
    {
        *("b", "strong", "i", "em", "u", "ins", "s", "strike", "del"),
        *("tg-spoiler", "span", "a", "code", "pre", "blockquote", "tg-emoji"),
    }
)
"""Tags Telegram's HTML parse mode accepts."""

_STYLE_OF: dict[str, Style | None] = {
    **dict.fromkeys(("b", "strong"), "bold"),
    **dict.fromkeys(("i", "em"), "italic"),
    **dict.fromkeys(("u", "ins"), "underline"),
    **dict.fromkeys(("s", "strike", "del"), "strike"),
    **dict.fromkeys(("tg-spoiler", "span"), "spoiler"),
    "a": "link",
    "code": "code",
    "pre": "pre",
    "blockquote": "quote",
    "tg-emoji": None,  # kept as its text
}
_TAG_OF: dict[str, str] = {
    "bold": "b",
    "italic": "i",
    "underline": "u",
    "strike": "s",
    "spoiler": "tg-spoiler",
    "code": "code",
    "pre": "pre",
    "quote": "blockquote",
}
_CODE = frozenset({"code", "pre"})


def esc(text: str) -> str:
    """``text`` with ``<``, ``>`` and ``&`` escaped for Telegram HTML."""
    return html.escape(text, quote=False)


def _tags(span: Span) -> tuple[tuple[str, str], ...]:
    """The ``(start tag, end tag)`` pairs that write one span, outermost first."""
    if span.style == "link":
        return ((f'<a href="{html.escape(span.value, quote=True)}">', "</a>"),)
    code = (f'<code class="language-{span.value}">', "</code>")
    if span.style == "code" and span.value:
        return (code,)
    tag = _TAG_OF[span.style]
    if span.style == "pre" and span.value:
        return (("<pre>", "</pre>"), code)
    return ((f"<{tag}>", f"</{tag}>"),)


def _runs(styled: Styled) -> list[tuple[int, int, tuple[int, ...]]]:
    """:meth:`Styled.runs` as Telegram shows them: formatting stops around code, and stretches
    left alike by that are one."""
    spans = styled.spans
    out: list[tuple[int, int, tuple[int, ...]]] = []
    for start, end, stack in styled.runs():
        if any(spans[k].style in _CODE for k in stack):
            # Telegram lets no entity overlap code: bold, italic and the like stop around it.
            stack = tuple(k for k in stack if spans[k].style not in FORMATTING)
        if out and out[-1][2] == stack:
            out[-1] = (out[-1][0], end, stack)
        else:
            out.append((start, end, stack))
    return out


def encode(styled: Styled) -> str:
    """``styled`` as balanced Telegram HTML; elements are closed and reopened where needed."""
    text = styled.text
    tags = [_tags(span) for span in styled.spans]
    out: list[str] = []
    open_: tuple[int, ...] = ()
    for i, j, stack in _runs(styled):
        common = 0
        while common < min(len(open_), len(stack)) and open_[common] == stack[common]:
            common += 1
        out.extend(end for k in reversed(open_[common:]) for _, end in reversed(tags[k]))
        out.extend(start for k in stack[common:] for start, _ in tags[k])
        out.append(esc(text[i:j]))
        open_ = stack
    out.extend(end for k in reversed(open_) for _, end in reversed(tags[k]))
    return "".join(out)


@dataclass
class _Open:
    name: str
    start: int
    style: Style | None
    value: str
    index: int  # where its span goes in the output, to keep the opening order


class _Reader(HTMLParser):
    """Read Telegram HTML into text and the ranges of its elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.length = 0
        self.stack: list[_Open] = []
        self.spans: list[Span | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            return
        values = dict(attrs)
        value = str(values.get("href") or "") if tag == "a" else ""
        if tag == "code":
            value = str(values.get("class") or "").removeprefix("language-")
        self.stack.append(_Open(tag, self.length, _STYLE_OF[tag], value, len(self.spans)))
        self.spans.append(None)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i].name == tag:
                self._close(i)
                return

    def _close(self, i: int) -> None:
        for element in self.stack[i:]:
            if element.style is not None:
                self.spans[element.index] = Span(element.start, self.length, element.style, element.value)
        del self.stack[i:]

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
        self.length += len(data)

    def result(self) -> Styled:
        self._close(0)
        return Styled("".join(self.parts), tuple(s for s in self.spans if s is not None and s.end > s.start))


def decode(html_text: str) -> Styled:
    """The text Telegram shows for ``html_text`` and the ranges of its elements."""
    reader = _Reader()
    reader.feed(html_text)
    reader.close()
    return reader.result()
