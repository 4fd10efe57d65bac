"""Render the model's Markdown as Signal text: plain text plus text-style ranges.

Signal has no markup. A message is plain text plus a list of style ranges, which
signal-cli (and signal-cli-rest-api) take as ``"start:length:STYLE"`` strings, with
``start`` and ``length`` counted in UTF-16 code units as Signal's apps count them.
The Markdown is read with markdown-it-py's token stream (never with regexes), so
nesting, code spans and half-finished syntax behave the way a Markdown reader expects.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from markdown_it import MarkdownIt
from markdown_it.token import Token

log = logging.getLogger(__name__)

BOLD = "BOLD"
ITALIC = "ITALIC"
STRIKETHROUGH = "STRIKETHROUGH"
MONOSPACE = "MONOSPACE"
SPOILER = "SPOILER"

_SPOILER_MARK = "||"
_BULLET = "• "
_RULE = "⸻"

_INLINE_STYLES = {
    "strong_open": BOLD,
    "strong_close": BOLD,
    "em_open": ITALIC,
    "em_close": ITALIC,
    "s_open": STRIKETHROUGH,
    "s_close": STRIKETHROUGH,
}


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (an emoji outside the BMP counts 2)."""
    # Counted rather than encoded, so a lone surrogate in odd input cannot raise.
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


@functools.cache  # built on first use, not at import; parsing does not mutate it
def _parser() -> MarkdownIt:
    # html off: a model's "<b>" is shown as typed rather than silently dropped.
    return MarkdownIt("commonmark", {"html": False}).enable(["strikethrough", "table"])


@dataclass
class _Writer:
    """Accumulates plain text and style ranges while the tokens are walked."""

    parts: list[str] = field(default_factory=list)
    pos: int = 0  # UTF-16 units written so far
    pending: str = ""  # block separator waiting for the next text
    open_styles: list[tuple[str, int]] = field(default_factory=list)
    ranges: list[tuple[int, int, str]] = field(default_factory=list)

    def flush(self) -> None:
        if self.pending and self.parts:
            self._put(self.pending)
        self.pending = ""

    def _put(self, text: str) -> None:
        self.parts.append(text)
        self.pos += utf16_len(text)

    def emit(self, text: str) -> None:
        if not text:
            return
        self.flush()
        self._put(text)

    def separate(self, sep: str) -> None:
        # A blank line wins over a single newline; nothing leads the text.
        if len(sep) > len(self.pending):
            self.pending = sep

    def open(self, style: str) -> None:
        self.flush()
        self.open_styles.append((style, self.pos))

    def close(self, style: str) -> None:
        for i in range(len(self.open_styles) - 1, -1, -1):
            name, start = self.open_styles[i]
            if name == style:
                del self.open_styles[i]
                if self.pos > start:
                    self.ranges.append((start, self.pos - start, style))
                return

    def styled(self, text: str, style: str) -> None:
        self.open(style)
        self.emit(text)
        self.close(style)

    def text_since(self, index: int) -> str:
        return "".join(self.parts[index:])


@dataclass
class _ListState:
    ordered: bool
    number: int


class _Renderer:
    def __init__(self) -> None:
        self.w = _Writer()
        self.lists: list[_ListState] = []
        self.quote_depth = 0
        self.cell_index = 0

    # --- blocks ------------------------------------------------------------------------

    def render(self, tokens: Sequence[Token]) -> None:
        handlers: dict[str, Callable[[Token], None]] = {
            "heading_open": lambda tok: self.w.open(BOLD),
            "heading_close": self._heading_close,
            "paragraph_open": self._paragraph_open,
            "paragraph_close": lambda tok: self.w.separate("\n" if tok.hidden else "\n\n"),
            "inline": lambda tok: self.inline(tok.children or []),
            "bullet_list_open": self._list_open,
            "ordered_list_open": self._list_open,
            "bullet_list_close": self._list_close,
            "ordered_list_close": self._list_close,
            "list_item_open": lambda tok: self.list_item(),
            "list_item_close": lambda tok: self.w.separate("\n"),
            "fence": self._code,
            "code_block": self._code,
            "blockquote_open": self._quote_open,
            "blockquote_close": self._quote_close,
            "hr": lambda tok: self._block_text(_RULE),
            "html_block": lambda tok: self._block_text(tok.content.rstrip("\n")),
            "tr_open": self._row_open,
            "tr_close": lambda tok: self.w.separate("\n"),
            "th_open": self._cell_open,
            "td_open": self._cell_open,
            "th_close": lambda tok: self.w.close(BOLD),
            "table_close": lambda tok: self.w.separate("\n\n"),
        }
        for tok in tokens:
            handler = handlers.get(tok.type)
            if handler is not None:
                handler(tok)

    def _heading_close(self, tok: Token) -> None:
        self.w.close(BOLD)
        self.w.separate("\n\n")

    def _paragraph_open(self, tok: Token) -> None:
        if self.quote_depth:
            self.w.emit("> " * self.quote_depth)

    def _list_open(self, tok: Token) -> None:
        start = tok.attrGet("start")
        number = int(start) if isinstance(start, int | str) and str(start).isdigit() else 1
        self.lists.append(_ListState(tok.type == "ordered_list_open", number))
        self.w.separate("\n")

    def _list_close(self, tok: Token) -> None:
        if self.lists:
            self.lists.pop()
        self.w.separate("\n" if self.lists else "\n\n")

    def _code(self, tok: Token) -> None:
        self.w.styled(tok.content.rstrip("\n"), MONOSPACE)
        self.w.separate("\n\n")

    def _quote_open(self, tok: Token) -> None:
        self.quote_depth += 1

    def _quote_close(self, tok: Token) -> None:
        self.quote_depth = max(0, self.quote_depth - 1)
        self.w.separate("\n\n")

    def _block_text(self, text: str) -> None:
        self.w.emit(text)
        self.w.separate("\n\n")

    def _row_open(self, tok: Token) -> None:
        self.cell_index = 0

    def _cell_open(self, tok: Token) -> None:
        if self.cell_index:
            self.w.emit(" | ")
        self.cell_index += 1
        if tok.type == "th_open":
            self.w.open(BOLD)

    def list_item(self) -> None:
        w = self.w
        if not self.lists:
            return
        state = self.lists[-1]
        indent = "  " * (len(self.lists) - 1)
        if state.ordered:
            w.emit(f"{indent}{state.number}. ")
            state.number += 1
        else:
            w.emit(indent + _BULLET)

    # --- inline ------------------------------------------------------------------------

    def inline(self, children: Sequence[Token]) -> None:
        marks = _spoiler_marks(children)
        links: list[tuple[str, int]] = []
        for i, tok in enumerate(children):
            kind = tok.type
            if kind == "text":
                self.text_with_spoilers(tok.content, marks.get(i, ()))
            elif kind in _INLINE_STYLES:
                (self.w.open if kind.endswith("_open") else self.w.close)(_INLINE_STYLES[kind])
            elif kind == "link_open":
                self.w.flush()
                href = tok.attrGet("href")
                links.append((str(href) if href else "", len(self.w.parts)))
            elif kind == "link_close":
                self._link_close(links)
            else:
                self._inline_other(tok)
        # A style opened in this paragraph must not run on into the next one.
        self.w.close(SPOILER)

    def _link_close(self, links: list[tuple[str, int]]) -> None:
        if not links:
            return
        href, index = links.pop()
        shown = self.w.text_since(index).strip()
        if href and shown != href and f"mailto:{shown}" != href:
            self.w.emit(f" ({href})")

    def _inline_other(self, tok: Token) -> None:
        kind = tok.type
        if kind in ("softbreak", "hardbreak"):
            self.w.emit("\n")
        elif kind == "code_inline":
            self.w.styled(tok.content, MONOSPACE)
        elif kind == "image":
            alt = tok.content or ""
            src = tok.attrGet("src")
            self.w.emit(f"{alt} ({src})" if alt and src else str(alt or src or ""))
        elif kind == "html_inline":
            self.w.emit(tok.content)

    def text_with_spoilers(self, text: str, cuts: Sequence[int]) -> None:
        w = self.w
        last = 0
        for cut in cuts:
            w.emit(text[last:cut])
            if any(name == SPOILER for name, _ in w.open_styles):
                w.close(SPOILER)
            else:
                w.open(SPOILER)
            last = cut + len(_SPOILER_MARK)
        w.emit(text[last:])


def _spoiler_marks(children: Sequence[Token]) -> dict[int, tuple[int, ...]]:
    """Where the paired ``||`` markers sit: child index -> offsets inside its text.

    Markers pair up in order within one paragraph; an unpaired last one (a spoiler the
    model is still typing) stays as literal text.
    """
    found: list[tuple[int, int]] = []
    for i, tok in enumerate(children):
        if tok.type != "text":
            continue
        at = tok.content.find(_SPOILER_MARK)
        while at != -1:
            found.append((i, at))
            at = tok.content.find(_SPOILER_MARK, at + len(_SPOILER_MARK))
    if len(found) % 2:
        found.pop()
    marks: dict[int, list[int]] = {}
    for i, at in found:
        marks.setdefault(i, []).append(at)
    return {i: tuple(v) for i, v in marks.items()}


def _finish(w: _Writer) -> tuple[str, list[str]]:
    text = "".join(w.parts).rstrip()
    total = utf16_len(text)
    styles: list[str] = []
    for start, length, style in sorted(w.ranges):
        end = min(start + length, total)
        if end > start:
            styles.append(f"{start}:{end - start}:{style}")
    return text, styles


def render_signal(markdown: str) -> tuple[str, list[str]]:
    """Render Markdown to ``(plain_text, ["start:length:STYLE", ...])`` for Signal.

    Headings become bold, code blocks monospace, list items ``"• "`` lines, links
    ``"text (url)"`` and ``||spoiler||`` a spoiler. Offsets are UTF-16 code units.
    Never raises: half-finished Markdown (while streaming) renders as well as it can,
    and anything unexpected falls back to the text as typed, without styles.
    """
    try:
        renderer = _Renderer()
        renderer.render(_parser().parse(markdown))
        return _finish(renderer.w)
    except Exception:  # a reply must never be lost to a rendering bug
        log.exception("rendering Markdown for Signal failed; sending it as plain text")
        return markdown, []
