"""Markdown → :class:`~bots.rendering.styled.Styled`: the one Markdown walker of the bots.

Markdown is parsed with markdown-it-py and rendered from its syntax tree into plain text plus
style ranges; each messenger only encodes those (Telegram as HTML, Signal as styled markup, the
terminal as ANSI/rich styles). A :class:`Profile` says what the target can show: tables become
preformatted grids or ``a | b`` rows, quotes a quote range or ``"> "`` lines, links a link range
or ``text (url)``, rules a line. Half-written Markdown (a streamed answer) renders as well as it
can, and every range stays inside the text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token
from markdown_it.tree import SyntaxTreeNode

from bots.rendering.styled import Span, Style, Styled, join

WEB_SCHEMES = frozenset({"http", "https", "tg", "mailto"})
_MAX_INLINE_DEPTH = 32
_BULLET = "• "
_SPOILER_MARK = "||"


@dataclass(frozen=True)
class Profile:
    """What a target can show, and so how Markdown is written for it."""

    styles: bool = True  # False: plain text, no ranges at all
    link_ranges: bool = True  # links as a ``link`` range; otherwise "text (url)"
    link_schemes: frozenset[str] | None = WEB_SCHEMES  # None: every URL is a link
    rule: str = "──────────"
    quote_prefix: bool = False  # quoted blocks start with "> " instead of a ``quote`` range
    table_grid: bool = True  # aligned columns in a code block; otherwise "a | b" rows, header bold
    spoilers: bool = False  # ``||text||`` is a spoiler


TELEGRAM = Profile()
"""Telegram: link, quote and code-block ranges; tables as aligned grids."""
PLAIN = Profile(styles=False, link_ranges=False)
"""Plain text (Telegram's fallback when it refuses the formatting): URLs written out."""
SIGNAL = Profile(link_ranges=False, link_schemes=None, rule="⸻", quote_prefix=True, table_grid=False, spoilers=True)
"""Signal: no link or quote styles, so URLs are written out and quotes marked with "> "."""
TERMINAL = replace(SIGNAL, rule="─" * 10)
"""The terminal: as Signal, with a rule a monospace font draws."""


@functools.cache  # built on first use, not at import; parsing does not mutate it
def _parser() -> MarkdownIt:
    # html=False: raw HTML in the answer is read as text, never passed through.
    return MarkdownIt("commonmark", {"html": False}).enable(["strikethrough", "table"])


@dataclass(frozen=True)
class _Block:
    """One rendered block; ``sep`` is the whitespace that separates it from the block before."""

    body: Styled
    pre: bool = False
    quoted: bool = False
    sep: str = "\n\n"


@dataclass(frozen=True)
class _Mode:
    profile: Profile
    in_link: bool = False
    marks: Mapping[int, tuple[int, ...]] = field(default_factory=dict)  # spoiler markers by token id


def _wrap(style: Style, inner: Styled, mode: _Mode, value: str = "") -> Styled:
    return inner.wrap(style, value) if mode.profile.styles else inner


def _link_allowed(href: str, schemes: frozenset[str] | None) -> bool:
    if not href:
        return False
    if schemes is None:
        return True
    try:
        return urlsplit(href).scheme.lower() in schemes
    except ValueError:
        return False


# --------------------------------------------------------------------------- inline


def _inline(nodes: Sequence[SyntaxTreeNode], mode: _Mode) -> Styled:
    return join([_inline_node(n, mode) for n in nodes])


def _text(node: SyntaxTreeNode, mode: _Mode) -> Styled:
    cuts = mode.marks.get(id(node.token), ()) if node.token is not None else ()
    if not cuts:
        return Styled(node.content)
    # A zero-width "spoiler" span marks each paired "||"; _resolve_spoilers pairs them up.
    pieces, last = [], 0
    for cut in cuts:
        pieces.append(Styled(node.content[last:cut]))
        pieces.append(Styled("", (Span(0, 0, "spoiler"),)))
        last = cut + len(_SPOILER_MARK)
    pieces.append(Styled(node.content[last:]))
    return join(pieces)


def _link(node: SyntaxTreeNode, mode: _Mode) -> Styled:
    image = node.type == "image"
    href = str(node.attrs.get("src" if image else "href", ""))
    inner = _inline(node.children, replace(mode, in_link=True))
    profile = mode.profile
    if image and not inner.text and profile.link_ranges:
        inner = Styled("image")
    if mode.in_link or not _link_allowed(href, profile.link_schemes):
        return inner
    if profile.link_ranges:
        return _wrap("link", inner if inner.text else Styled(href), mode, href)
    shown = inner.text.strip()
    if not shown:
        return Styled(href)
    if shown in (href, href.removeprefix("mailto:")):
        return inner
    return inner + Styled(f" ({href})")


def _inline_node(node: SyntaxTreeNode, mode: _Mode) -> Styled:
    kind = node.type
    if kind in ("text", "html_inline"):
        return _text(node, mode)
    if kind in ("softbreak", "hardbreak"):
        return Styled("\n")
    if kind == "code_inline":
        # Telegram forbids code inside a link; there it degrades to the link's text.
        if mode.in_link and mode.profile.link_ranges:
            return Styled(node.content)
        return _wrap("code", Styled(node.content), mode)
    styles: dict[str, Style] = {"strong": "bold", "em": "italic", "s": "strike"}
    if kind in styles:
        return _wrap(styles[kind], _inline(node.children, mode), mode)
    if kind in ("link", "image"):
        return _link(node, mode)
    if node.children:
        return _inline(node.children, mode)
    return Styled(node.content)


def _spoiler_marks(children: Sequence[Token]) -> dict[int, tuple[int, ...]]:
    """Where the paired ``||`` markers sit: text token id -> offsets inside its text.

    Markers pair up in order within one paragraph; an unpaired last one (a spoiler the
    model is still typing) stays as literal text.
    """
    found: list[tuple[int, int]] = []
    for tok in children:
        if tok.type != "text":
            continue
        at = tok.content.find(_SPOILER_MARK)
        while at != -1:
            found.append((id(tok), at))
            at = tok.content.find(_SPOILER_MARK, at + len(_SPOILER_MARK))
    if len(found) % 2:
        found.pop()
    marks: dict[int, list[int]] = {}
    for key, at in found:
        marks.setdefault(key, []).append(at)
    return {key: tuple(v) for key, v in marks.items()}


def _resolve_spoilers(styled: Styled) -> Styled:
    """Turn the zero-width spoiler markers into spoiler ranges between each pair."""
    marks = [s.start for s in styled.spans if s.style == "spoiler" and s.start == s.end]
    if not marks:
        return styled
    kept = tuple(s for s in styled.spans if s.end > s.start)
    pairs = tuple(Span(a, b, "spoiler") for a, b in zip(marks[::2], marks[1::2], strict=False) if b > a)
    return Styled(styled.text, kept + pairs)


def _inline_of(node: SyntaxTreeNode, mode: _Mode) -> Styled:
    """Render the inline content of a block node (paragraph, heading, table cell)."""
    out = []
    for child in node.children:
        if child.type != "inline":
            continue
        if mode.profile.spoilers and child.token is not None:
            inner = replace(mode, marks=_spoiler_marks(child.token.children or []))
            out.append(_resolve_spoilers(_inline(child.children, inner)))
        else:
            out.append(_inline(child.children, mode))
    return join(out)


# --------------------------------------------------------------------------- blocks


def _code_block(node: SyntaxTreeNode, mode: _Mode) -> list[_Block]:
    content = node.content[:-1] if node.content.endswith("\n") else node.content
    if not content.strip():
        return []
    lang = ""
    if node.type == "fence" and node.info.strip():
        lang = re.sub(r"[^A-Za-z0-9_+#.-]", "", node.info.split()[0])
    return [_Block(_wrap("pre", Styled(content), mode, lang), pre=True)]


def _table_rows(node: SyntaxTreeNode, mode: _Mode) -> tuple[list[list[Styled]], list[str], int]:
    """The cells of a table by row, the columns' alignments and the number of header rows."""
    rows: list[list[Styled]] = []
    aligns: list[str] = []
    header_rows = 0
    for section in node.children:
        for tr in section.children:
            cells = []
            for cell in tr.children:
                body = _inline_of(cell, mode)
                cells.append(_wrap("bold", body, mode) if cell.type == "th" and not mode.profile.table_grid else body)
            if not aligns:
                aligns = [str(cell.attrs.get("style", "")).removeprefix("text-align:") for cell in tr.children]
            rows.append(cells)
            header_rows += section.type == "thead"
    return rows, aligns, header_rows


def _table(node: SyntaxTreeNode, mode: _Mode) -> list[_Block]:
    plain = _Mode(PLAIN) if mode.profile.table_grid else mode
    rows, aligns, header_rows = _table_rows(node, plain)
    if not rows:
        return []
    if not mode.profile.table_grid:
        joined = [join([Styled(" | ") + c if i else c for i, c in enumerate(row)]) for row in rows]
        return [_Block(join([Styled("\n") + line if i else line for i, line in enumerate(joined)]))]
    texts = [[" ".join(cell.text.split()) for cell in row] for row in rows]
    ncols = max(len(r) for r in texts)
    widths = [max((len(r[c]) for r in texts if c < len(r)), default=0) for c in range(ncols)]
    aligns += [""] * (ncols - len(aligns))

    def fmt(cell: str, c: int) -> str:
        if aligns[c] == "right":
            return cell.rjust(widths[c])
        if aligns[c] == "center":
            return cell.center(widths[c])
        return cell.ljust(widths[c])

    lines = []
    for i, row in enumerate(texts):
        row = row + [""] * (ncols - len(row))
        lines.append(" | ".join(fmt(cell, c) for c, cell in enumerate(row)).rstrip())
        if i == header_rows - 1:
            lines.append("-+-".join("-" * w for w in widths))
    return [_Block(_wrap("pre", Styled("\n".join(lines)), mode), pre=True)]


def _list(node: SyntaxTreeNode, mode: _Mode) -> list[_Block]:
    tight = all(child.hidden for item in node.children for child in item.children if child.type == "paragraph")
    start = int(str(node.attrs.get("start", 1))) if node.type == "ordered_list" else 1
    out: list[_Block] = []
    for k, item in enumerate(node.children):
        marker = _BULLET if node.type == "bullet_list" else f"{start + k}. "
        indent = " " * len(marker)
        blocks = _children(item.children, mode, "\n" if tight else "\n\n")
        if not blocks or blocks[0].pre:
            blocks.insert(0, _Block(Styled()))
        item_blocks = []
        for i, b in enumerate(blocks):
            if not b.pre:
                b = replace(b, body=b.body.indented(marker if i == 0 else indent, indent))
            item_blocks.append(b)
        item_blocks[0] = replace(item_blocks[0], sep="\n" if tight else "\n\n")
        out.extend(item_blocks)
    return out


def _quote(node: SyntaxTreeNode, mode: _Mode) -> list[_Block]:
    blocks = _children(node.children, mode, "\n\n")
    if mode.profile.quote_prefix:
        return [b if b.pre else replace(b, body=Styled("> ") + b.body) for b in blocks]
    return [replace(b, quoted=True) for b in blocks]


def _block(node: SyntaxTreeNode, mode: _Mode) -> list[_Block]:
    kind = node.type
    if kind in ("paragraph", "heading"):
        body = _inline_of(node, mode)
        return [_Block(_wrap("bold", body, mode) if kind == "heading" else body)]
    if kind == "hr":
        return [_Block(Styled(mode.profile.rule))]
    if kind in ("fence", "code_block"):
        return _code_block(node, mode)
    if kind in ("bullet_list", "ordered_list"):
        return _list(node, mode)
    if kind == "blockquote":
        return _quote(node, mode)
    if kind == "table":
        return _table(node, mode)
    if kind == "inline":
        return [_Block(_inline(node.children, mode))]
    if node.children:
        return _children(node.children, mode, "\n\n")
    return [_Block(Styled(node.content.rstrip("\n")))]


def _children(nodes: Sequence[SyntaxTreeNode], mode: _Mode, sep: str) -> list[_Block]:
    out: list[_Block] = []
    for node in nodes:
        blocks = [b for b in _block(node, mode) if b.body.text]
        if blocks:
            blocks[0] = replace(blocks[0], sep=sep)
            out.extend(blocks)
    return out


def _join(blocks: Sequence[_Block], mode: _Mode) -> Styled:
    # Telegram cannot nest a code block in a quote: a quote is closed around it and reopened.
    out: list[Styled] = []
    quote: list[Styled] = []
    for i, b in enumerate(blocks):
        quote_here = b.quoted and not b.pre and mode.profile.styles
        if quote and not quote_here:
            out.append(join(quote).wrap("quote"))
            quote = []
        sep = Styled(b.sep if i else "")
        if quote_here:
            (quote if quote else out).append(sep)
            quote.append(b.body)
        else:
            out.extend((sep, b.body))
    if quote:
        out.append(join(quote).wrap("quote"))
    return join(out)


def _flatten_deep_inline(tokens: list[Token], max_depth: int = _MAX_INLINE_DEPTH) -> None:
    """Drop inline open/close pairs nested deeper than ``max_depth``, keeping their text.

    markdown-it bounds block nesting but not emphasis nesting (``'*' * 20000``), and the
    syntax tree is built recursively: without this, such input raises RecursionError.
    """
    for token in tokens:
        if token.type != "inline" or not token.children:
            continue
        kept: list[Token] = []
        dropped: list[bool] = []
        for child in token.children:
            if child.nesting == 1:
                drop = len(dropped) >= max_depth
                dropped.append(drop)
                if not drop:
                    kept.append(child)
            elif child.nesting == -1:
                if not dropped or not dropped.pop():
                    kept.append(child)
            else:
                kept.append(child)
        token.children = kept


def render(markdown: str, profile: Profile = TELEGRAM) -> Styled:
    """Render ``markdown`` as plain text plus style ranges for a target described by ``profile``."""
    tokens = _parser().parse(markdown)
    _flatten_deep_inline(tokens)
    mode = _Mode(profile)
    tree = SyntaxTreeNode(tokens)
    try:
        return _join(_children(tree.children, mode, "\n\n"), mode)
    finally:
        _take_apart(tree)


def _take_apart(tree: SyntaxTreeNode) -> None:
    """Unlink the tree's nodes from each other: a node and its parent refer to each other, and left
    so, every render (each preview of a streaming answer) was garbage only Python's cycle collector
    could free (bots/loop.py: tune_gc)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        node.children = []
        node.parent = None
