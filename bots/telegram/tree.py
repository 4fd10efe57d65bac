"""Markdown → Telegram HTML, from markdown-it-py's syntax tree (see :mod:`.render`).

Every tag emitted is one Telegram's ``parse_mode=HTML`` knows, every other character is
escaped; tables become preformatted text, lists bullet lines, rules a line of dashes.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token
from markdown_it.tree import SyntaxTreeNode

ALLOWED_TAGS = frozenset(
    {
        *("b", "strong", "i", "em", "u", "ins", "s", "strike", "del"),
        *("tg-spoiler", "span", "a", "code", "pre", "blockquote", "tg-emoji"),
    }
)
"""Tags Telegram's HTML parse mode accepts."""

CODE_TAGS = frozenset({"code", "pre"})
FORMATTING_TAGS = frozenset({"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "tg-spoiler", "span"})
_MAX_INLINE_DEPTH = 32
_LINK_SCHEMES = frozenset({"http", "https", "tg", "mailto"})
_HR = "──────────"
_BULLET = "• "
# Characters that must stay with the one before them when a hard cut is unavoidable.


def utf16_len(s: str) -> int:
    """Length of ``s`` in UTF-16 code units, the unit of Telegram's limits and offsets."""
    return len(s) + sum(1 for ch in s if ord(ch) > 0xFFFF)


def esc(text: str) -> str:
    return html.escape(text, quote=False)


def esc_attr(text: str) -> str:
    return html.escape(text, quote=True)


@functools.cache  # built on first use, not at import; parsing does not mutate it
def _parser() -> MarkdownIt:
    # html=False: raw HTML in the answer is parsed as text and escaped, never passed through.
    return MarkdownIt("commonmark", {"html": False}).enable(["strikethrough", "table"])


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class _Block:
    """One rendered block; ``sep`` is the whitespace that separates it from the block before."""

    html: str
    pre: bool = False
    quoted: bool = False
    sep: str = "\n\n"


@dataclass(frozen=True)
class _Mode:
    plain: bool
    in_link: bool = False
    esc: Callable[[str], str] = field(default=esc)


def _link_allowed(href: str) -> bool:
    try:
        scheme = urlsplit(href).scheme.lower()
    except ValueError:
        return False
    return scheme in _LINK_SCHEMES


def _wrap(tag: str, inner: str, mode: _Mode) -> str:
    if not inner or mode.plain:
        return inner
    return f"<{tag}>{inner}</{tag}>"


def _inline(nodes: Sequence[SyntaxTreeNode], mode: _Mode) -> str:
    return "".join(_inline_node(n, mode) for n in nodes)


def _inline_node(node: SyntaxTreeNode, mode: _Mode) -> str:
    kind = node.type
    if kind in ("text", "html_inline"):
        return mode.esc(node.content)
    if kind in ("softbreak", "hardbreak"):
        return "\n"
    if kind == "code_inline":
        # Telegram forbids code inside a link; there it degrades to the link's text.
        if mode.in_link:
            return mode.esc(node.content)
        return _wrap("code", mode.esc(node.content), mode)
    if kind == "strong":
        return _wrap("b", _inline(node.children, mode), mode)
    if kind == "em":
        return _wrap("i", _inline(node.children, mode), mode)
    if kind == "s":
        return _wrap("s", _inline(node.children, mode), mode)
    if kind in ("link", "image"):
        href = str(node.attrs.get("href" if kind == "link" else "src", ""))
        inner = _inline(node.children, replace(mode, in_link=True))
        if kind == "image" and not inner:
            inner = mode.esc("image")
        if mode.in_link or not _link_allowed(href):
            return inner
        if mode.plain:
            return inner if not inner or inner == href else f"{inner} ({href})"
        return f'<a href="{esc_attr(href)}">{inner or esc(href)}</a>'
    if node.children:
        return _inline(node.children, mode)
    return mode.esc(node.content)


def _inline_of(node: SyntaxTreeNode, mode: _Mode) -> str:
    """Render the inline content of a block node (paragraph, heading, table cell)."""
    return "".join(_inline(child.children, mode) for child in node.children if child.type == "inline")


def _code_block(node: SyntaxTreeNode, mode: _Mode) -> list[_Block]:
    content = node.content[:-1] if node.content.endswith("\n") else node.content
    if not content.strip():
        return []
    if mode.plain:
        return [_Block(content, pre=True)]
    lang = ""
    if node.type == "fence" and node.info.strip():
        lang = re.sub(r"[^A-Za-z0-9_+#.-]", "", node.info.split()[0])
    if lang:
        return [_Block(f'<pre><code class="language-{lang}">{esc(content)}</code></pre>', pre=True)]
    return [_Block(f"<pre>{esc(content)}</pre>", pre=True)]


def _table(node: SyntaxTreeNode, mode: _Mode) -> list[_Block]:
    plain = _Mode(plain=True, esc=str)
    rows: list[list[str]] = []
    aligns: list[str] = []
    header_rows = 0
    for section in node.children:
        for tr in section.children:
            cells = [" ".join(_inline_of(cell, plain).split()) for cell in tr.children]
            if not aligns:
                aligns = [str(cell.attrs.get("style", "")).removeprefix("text-align:") for cell in tr.children]
            rows.append(cells)
            if section.type == "thead":
                header_rows += 1
    if not rows:
        return []
    ncols = max(len(r) for r in rows)
    widths = [max((len(r[c]) for r in rows if c < len(r)), default=0) for c in range(ncols)]
    aligns += [""] * (ncols - len(aligns))

    def fmt(cell: str, c: int) -> str:
        if aligns[c] == "right":
            return cell.rjust(widths[c])
        if aligns[c] == "center":
            return cell.center(widths[c])
        return cell.ljust(widths[c])

    lines = []
    for i, row in enumerate(rows):
        row = row + [""] * (ncols - len(row))
        lines.append(" | ".join(fmt(cell, c) for c, cell in enumerate(row)).rstrip())
        if i == header_rows - 1:
            lines.append("-+-".join("-" * w for w in widths))
    text = "\n".join(lines)
    return [_Block(text if mode.plain else f"<pre>{esc(text)}</pre>", pre=True)]


def _list(node: SyntaxTreeNode, mode: _Mode) -> list[_Block]:
    tight = all(child.hidden for item in node.children for child in item.children if child.type == "paragraph")
    start = int(str(node.attrs.get("start", 1))) if node.type == "ordered_list" else 1
    out: list[_Block] = []
    for k, item in enumerate(node.children):
        marker = _BULLET if node.type == "bullet_list" else f"{start + k}. "
        indent = " " * len(marker)
        blocks = _children(item.children, mode, "\n" if tight else "\n\n")
        if not blocks or blocks[0].pre:
            blocks.insert(0, _Block(""))
        item_blocks = []
        for i, b in enumerate(blocks):
            if not b.pre:
                body = b.html.replace("\n", "\n" + indent)
                b = replace(b, html=(mode.esc(marker) + body) if i == 0 else indent + body)
            item_blocks.append(b)
        item_blocks[0] = replace(item_blocks[0], sep="\n" if tight else "\n\n")
        out.extend(item_blocks)
    return out


def _block(node: SyntaxTreeNode, mode: _Mode) -> list[_Block]:
    kind = node.type
    if kind == "paragraph":
        return [_Block(_inline_of(node, mode))]
    if kind == "heading":
        return [_Block(_wrap("b", _inline_of(node, mode), mode))]
    if kind == "hr":
        return [_Block(_HR)]
    if kind in ("fence", "code_block"):
        return _code_block(node, mode)
    if kind in ("bullet_list", "ordered_list"):
        return _list(node, mode)
    if kind == "blockquote":
        return [replace(b, quoted=True) for b in _children(node.children, mode, "\n\n")]
    if kind == "table":
        return _table(node, mode)
    if kind == "inline":
        return [_Block(_inline(node.children, mode))]
    if node.children:
        return _children(node.children, mode, "\n\n")
    return [_Block(mode.esc(node.content.rstrip("\n")))]


def _children(nodes: Sequence[SyntaxTreeNode], mode: _Mode, sep: str) -> list[_Block]:
    out: list[_Block] = []
    for node in nodes:
        blocks = [b for b in _block(node, mode) if b.html]
        if blocks:
            blocks[0] = replace(blocks[0], sep=sep)
            out.extend(blocks)
    return out


def _join(blocks: Sequence[_Block], mode: _Mode) -> str:
    # Telegram cannot nest a code block in a quote: a quote is closed around it and reopened.
    parts: list[str] = []
    in_quote = False
    for i, b in enumerate(blocks):
        quote_here = b.quoted and not b.pre and not mode.plain
        if in_quote and not quote_here:
            parts.append("</blockquote>")
            in_quote = False
        if i:
            parts.append(b.sep)
        if quote_here and not in_quote:
            parts.append("<blockquote>")
            in_quote = True
        parts.append(b.html)
    if in_quote:
        parts.append("</blockquote>")
    return "".join(parts)


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


def _render(markdown: str, mode: _Mode) -> str:
    tokens = _parser().parse(markdown)
    _flatten_deep_inline(tokens)
    tree = SyntaxTreeNode(tokens)
    return _join(_children(tree.children, mode, "\n\n"), mode)


def markdown_html(markdown: str, *, plain: bool) -> str:
    """The HTML (or, with ``plain``, the plain text) of ``markdown``; tags may need balancing."""
    return _render(markdown, _Mode(plain=True, esc=str) if plain else _Mode(plain=False))
