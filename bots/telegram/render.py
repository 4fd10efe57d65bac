"""Render the model's Markdown as Telegram HTML or plain text, and split long replies.

Telegram's ``parse_mode=HTML`` accepts a handful of tags and rejects the whole message
("Can't parse entities") on anything else, so Markdown is parsed with markdown-it-py and
rendered from its syntax tree: every tag we emit is one Telegram knows, every other
character is escaped, and the output is balanced for any prefix of a streamed answer.

Telegram limits a message to 4,096 UTF-16 code units of *visible* text (after entity
parsing). :func:`split_message` splits rendered HTML by that measure at the best boundary
(paragraph, line, word, then hard) and closes and reopens the open tags around every cut,
so a code block split across messages stays a code block, with its language, in each.
"""

from __future__ import annotations

import bisect
import functools
import html
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token
from markdown_it.tree import SyntaxTreeNode

__all__ = [
    "ALLOWED_TAGS",
    "TELEGRAM_MAX_TEXT",
    "plain_text",
    "render_html",
    "render_parts",
    "split_message",
    "split_plain",
    "telegram_length",
    "utf16_len",
    "visible_text",
]

TELEGRAM_MAX_TEXT = 4096
"""Telegram's message limit, in UTF-16 code units of visible text."""

ALLOWED_TAGS = frozenset(
    {
        *("b", "strong", "i", "em", "u", "ins", "s", "strike", "del"),
        *("tg-spoiler", "span", "a", "code", "pre", "blockquote", "tg-emoji"),
    }
)
"""Tags Telegram's HTML parse mode accepts."""

_CODE_TAGS = frozenset({"code", "pre"})
_FORMATTING_TAGS = frozenset({"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "tg-spoiler", "span"})
_MAX_INLINE_DEPTH = 32
_LINK_SCHEMES = frozenset({"http", "https", "tg", "mailto"})
_HR = "──────────"
_BULLET = "• "
# Characters that must stay with the one before them when a hard cut is unavoidable.
_JOINERS = frozenset({"\u200d", "\ufe0e", "\ufe0f"})


def utf16_len(s: str) -> int:
    """Length of ``s`` in UTF-16 code units, the unit of Telegram's limits and offsets."""
    return len(s) + sum(1 for ch in s if ord(ch) > 0xFFFF)


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def _esc_attr(text: str) -> str:
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
    esc: Callable[[str], str] = field(default=_esc)


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
        return f'<a href="{_esc_attr(href)}">{inner or _esc(href)}</a>'
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
        return [_Block(f'<pre><code class="language-{lang}">{_esc(content)}</code></pre>', pre=True)]
    return [_Block(f"<pre>{_esc(content)}</pre>", pre=True)]


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
    return [_Block(text if mode.plain else f"<pre>{_esc(text)}</pre>", pre=True)]


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


def render_html(markdown: str) -> str:
    """Render Markdown as balanced HTML that Telegram's ``parse_mode=HTML`` accepts.

    Half-written Markdown (an unclosed fence or ``**``) still renders to valid HTML, so
    this is safe for every edit of a streamed answer.
    """
    text, stacks = _flatten(_render(markdown, _Mode(plain=False)))
    return _emit(text, stacks, 0, len(text))


def plain_text(markdown: str) -> str:
    """Render Markdown as readable plain text: the fallback when Telegram refuses the HTML.

    Markers are removed, code is kept verbatim, and a link keeps its URL in parentheses.
    """
    return _render(markdown, _Mode(plain=True, esc=str))


# --------------------------------------------------------------------------- visible text


@dataclass(frozen=True)
class _Tag:
    """An open element; ``uid`` keeps two adjacent elements of the same kind apart."""

    uid: int
    name: str
    start: str

    @property
    def end(self) -> str:
        return f"</{self.name}>"


class _Runs(HTMLParser):
    """Turn Telegram HTML into runs of visible text, each with the elements open around it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[_Tag] = []
        self.runs: list[tuple[tuple[_Tag, ...], str]] = []
        self._uid = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            return
        rendered = "".join(f" {k}" if v is None else f' {k}="{_esc_attr(v)}"' for k, v in attrs)
        self._uid += 1
        self.stack.append(_Tag(self._uid, tag, f"<{tag}{rendered}>"))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i].name == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        if not data:
            return
        stack = tuple(self.stack)
        if any(tag.name in _CODE_TAGS for tag in stack):
            # Telegram lets no entity overlap code: bold, italic and the like stop around it.
            stack = tuple(tag for tag in stack if tag.name not in _FORMATTING_TAGS)
        if self.runs and self.runs[-1][0] == stack:
            self.runs[-1] = (stack, self.runs[-1][1] + data)
        else:
            self.runs.append((stack, data))


def _runs(html_text: str) -> list[tuple[tuple[_Tag, ...], str]]:
    parser = _Runs()
    parser.feed(html_text)
    parser.close()
    return parser.runs


def _flatten(html_text: str) -> tuple[str, list[tuple[_Tag, ...]]]:
    """The visible text of ``html_text`` and, for each of its characters, the elements open there."""
    runs = _runs(html_text)
    stacks: list[tuple[_Tag, ...]] = []
    for stack, t in runs:
        stacks.extend([stack] * len(t))
    return "".join(t for _, t in runs), stacks


def visible_text(html_text: str) -> str:
    """The text Telegram shows for ``html_text``: tags removed, entities decoded."""
    return "".join(text for _, text in _runs(html_text))


def telegram_length(html_text: str) -> int:
    """Length of ``html_text`` as Telegram counts it: UTF-16 units of the visible text."""
    return utf16_len(visible_text(html_text))


# --------------------------------------------------------------------------- splitting

# Cut levels, best first. A cut drops the whitespace it is made at.
_PARAGRAPH, _LINE, _CODE_LINE, _WORD, _CODE_WORD = range(5)


def _cuts(text: str, in_pre: Sequence[bool], limit: int) -> list[tuple[int, int]]:
    """Return ``(start, end)`` ranges of ``text``, each at most ``limit`` UTF-16 units.

    Between two consecutive ranges lies only whitespace (the separator cut at), or nothing
    after a hard cut.
    """
    if limit < 2:
        raise ValueError("limit must be at least 2 UTF-16 units")
    offsets = [0]
    for ch in text:
        offsets.append(offsets[-1] + (2 if ord(ch) > 0xFFFF else 1))
    ranges: list[tuple[int, int]] = []
    start = 0
    n = len(text)
    while start < n:
        if offsets[n] - offsets[start] <= limit:
            ranges.append((start, n))
            break
        # Largest end such that text[start:end] fits.
        end = bisect.bisect_right(offsets, offsets[start] + limit) - 1
        cut, nxt = _best_cut(text, in_pre, start, end)
        ranges.append((start, cut))
        start = nxt
    return ranges


def _cut_kind(text: str, in_pre: Sequence[bool], j: int) -> tuple[int, int] | None:
    """The kind of cut possible at ``text[j]`` and how many characters it drops (None: none)."""
    ch = text[j]
    if ch == " ":
        return (_CODE_WORD if in_pre[j] else _WORD), 1
    if ch != "\n":
        return None
    if in_pre[j]:
        return _CODE_LINE, 1
    if j + 1 < len(text) and text[j + 1] == "\n" and not in_pre[j + 1]:
        return _PARAGRAPH, 2
    return _LINE, 1


def _best_cut(text: str, in_pre: Sequence[bool], start: int, end: int) -> tuple[int, int]:
    """Where to end the part that starts at ``start`` (and where the next one starts)."""
    best: dict[int, tuple[int, int]] = {}
    for j in range(end, start, -1):
        found = _cut_kind(text, in_pre, j)
        if found is not None:
            best.setdefault(found[0], (j, j + found[1]))
            if found[0] == _PARAGRAPH:
                break
    if not best:
        cut = _hard_cut(text, start, end)
        return cut, cut
    cut, nxt = best[min(best)]
    if min(best) in (_PARAGRAPH, _LINE):
        # Cut a run of blank lines whole: neither part should carry them.
        n = len(text)
        while cut - 1 > start and text[cut - 1] == "\n" and not in_pre[cut - 1]:
            cut -= 1
        while nxt < n and text[nxt] == "\n" and not in_pre[nxt]:
            nxt += 1
    return cut, nxt


def _hard_cut(text: str, start: int, end: int) -> int:
    """Cut at ``end``, backing off a little so as not to cut a character cluster apart."""
    for j in range(end, max(start, end - 32), -1):
        if not _inside_cluster(text, j):
            return j
    return end  # one cluster longer than the window (Zalgo text): cut it anyway


def _is_regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _inside_cluster(text: str, j: int) -> bool:
    """Whether a cut before ``text[j]`` would split an emoji sequence or a combining sequence."""
    ch, prev = text[j], text[j - 1]
    code = ord(ch)
    if ch in _JOINERS or prev == "\u200d" or unicodedata.combining(ch):
        return True
    if 0x1F3FB <= code <= 0x1F3FF or 0xE0020 <= code <= 0xE007F:  # skin tones, flag tags
        return True
    if _is_regional(ch) and _is_regional(prev):
        run = 0
        while j - run - 1 >= 0 and _is_regional(text[j - run - 1]):
            run += 1
        return run % 2 == 1  # flags are pairs of regional indicators
    return False


def split_message(html_text: str, limit: int = TELEGRAM_MAX_TEXT) -> list[str]:
    """Split Telegram HTML into messages of at most ``limit`` UTF-16 units of visible text.

    Cuts are made at a blank line outside code, then a line break outside code, then a
    line break inside code, then a space, and only then anywhere. The elements open at a
    cut are closed at the end of one part and reopened at the start of the next, so each
    part is balanced HTML and a code block keeps its language. Parts whose visible text
    would be blank are dropped; an empty input gives ``[]``.
    """
    text, stacks = _flatten(html_text)
    in_pre = [any(tag.name == "pre" for tag in stack) for stack in stacks]
    parts = []
    for a, b in _cuts(text, in_pre, limit):
        if text[a:b].strip():
            parts.append(_emit(text, stacks, a, b))
    return parts


def _emit(text: str, stacks: Sequence[tuple[_Tag, ...]], a: int, b: int) -> str:
    out: list[str] = []
    open_: tuple[_Tag, ...] = ()
    i = a
    while i < b:
        stack = stacks[i]
        j = i
        while j < b and stacks[j] == stack:
            j += 1
        common = 0
        while common < min(len(open_), len(stack)) and open_[common] == stack[common]:
            common += 1
        out.extend(tag.end for tag in reversed(open_[common:]))
        out.extend(tag.start for tag in stack[common:])
        out.append(_esc(text[i:j]))
        open_ = stack
        i = j
    out.extend(tag.end for tag in reversed(open_))
    return "".join(out)


def split_plain(text: str, limit: int = TELEGRAM_MAX_TEXT) -> list[str]:
    """Split plain text as :func:`split_message` splits HTML (no code blocks are known here)."""
    return [text[a:b] for a, b in _cuts(text, [False] * len(text), limit) if text[a:b].strip()]


def render_parts(markdown: str, limit: int = TELEGRAM_MAX_TEXT) -> list[str]:
    """Render Markdown and split it into Telegram HTML messages: the usual entry point.

    Besides the length limit, no part carries more than :data:`TELEGRAM_MAX_ENTITIES`
    formatting entities: Telegram silently drops the formatting after the hundredth.
    """
    return [
        piece for part in split_message(render_html(markdown), limit) for piece in _within_entity_limit(part)
    ]


TELEGRAM_MAX_ENTITIES = 100
"""Formatting entities Telegram honours in one message; the ones after it are shown plain."""

_ENTITY_OPEN = re.compile(r"<(?:b|strong|i|em|u|ins|s|strike|del|tg-spoiler|span|a|code|pre|blockquote)[\s>]")


def entity_count(html_text: str) -> int:
    """Formatting entities in Telegram HTML (a ``<pre><code>`` block counts twice: an upper bound)."""
    return len(_ENTITY_OPEN.findall(html_text))


def _within_entity_limit(part: str) -> list[str]:
    entities = entity_count(part)
    if entities <= TELEGRAM_MAX_ENTITIES:
        return [part]
    # Cut the part shorter in proportion, then check each piece again.
    length = telegram_length(part)
    pieces = split_message(part, max(1, length * TELEGRAM_MAX_ENTITIES * 9 // (entities * 10)))
    if len(pieces) <= 1:
        return [part]
    return [p for piece in pieces for p in _within_entity_limit(piece)]
