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

import re
from collections.abc import Sequence
from dataclasses import dataclass
from html.parser import HTMLParser

from bots.telegram.cuts import cut_ranges
from bots.telegram.tree import ALLOWED_TAGS, CODE_TAGS, FORMATTING_TAGS, esc, esc_attr, markdown_html, utf16_len

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


def render_html(markdown: str) -> str:
    """Render Markdown as balanced HTML that Telegram's ``parse_mode=HTML`` accepts.

    Half-written Markdown (an unclosed fence or ``**``) still renders to valid HTML, so
    this is safe for every edit of a streamed answer.
    """
    text, stacks = _flatten(markdown_html(markdown, plain=False))
    return _emit(text, stacks, 0, len(text))


def plain_text(markdown: str) -> str:
    """Render Markdown as readable plain text: the fallback when Telegram refuses the HTML.

    Markers are removed, code is kept verbatim, and a link keeps its URL in parentheses.
    """
    return markdown_html(markdown, plain=True)


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
        rendered = "".join(f" {k}" if v is None else f' {k}="{esc_attr(v)}"' for k, v in attrs)
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
        if any(tag.name in CODE_TAGS for tag in stack):
            # Telegram lets no entity overlap code: bold, italic and the like stop around it.
            stack = tuple(tag for tag in stack if tag.name not in FORMATTING_TAGS)
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
    for a, b in cut_ranges(text, in_pre, limit):
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
        out.append(esc(text[i:j]))
        open_ = stack
        i = j
    out.extend(tag.end for tag in reversed(open_))
    return "".join(out)


def split_plain(text: str, limit: int = TELEGRAM_MAX_TEXT) -> list[str]:
    """Split plain text as :func:`split_message` splits HTML (no code blocks are known here)."""
    return [text[a:b] for a, b in cut_ranges(text, [False] * len(text), limit) if text[a:b].strip()]


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


# What Telegram turns into entities by itself in the visible text: links, @mentions,
# #hashtags, $cashtags, /commands and e-mail addresses. They count toward the 100 as well.
_AUTO_ENTITY = re.compile(
    r"(?:https?://|www\.)\S+|[\w.+-]+@[\w-]+\.[\w.-]+|(?<![\w@])@\w{3,}|(?<![\w#])#\w+|(?<![\w$])\$[A-Z]{1,8}\b"
    r"|(?<![\w/])/[A-Za-z]\w*"
)


def entity_count(html_text: str) -> int:
    """Entities of Telegram HTML: its tags and what Telegram detects in the text (an upper bound:
    a ``<pre><code>`` block counts twice, a URL inside code counts too)."""
    return len(_ENTITY_OPEN.findall(html_text)) + len(_AUTO_ENTITY.findall(visible_text(html_text)))


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
