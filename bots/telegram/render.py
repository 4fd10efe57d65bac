"""Render the model's Markdown for Telegram: HTML or plain text, split into messages.

The Markdown is walked once by :mod:`bots.rendering` into text plus style ranges; here those
are only encoded as the HTML of Telegram's ``parse_mode=HTML`` (:mod:`.render_html`): every
tag is one Telegram knows, every other character escaped, and the output balanced for any
prefix of a streamed answer.

Telegram limits a message to 4,096 UTF-16 code units of *visible* text (after entity
parsing). :func:`split_message` splits by that measure at the best boundary (paragraph, line,
word, then hard) and closes and reopens the open elements around every cut, so a code block
split across messages stays a code block, with its language, in each.
"""

from __future__ import annotations

import functools
import re

from bots.rendering import PLAIN, TELEGRAM, Styled, render, split_styled, split_text, utf16_len
from bots.telegram.render_html import ALLOWED_TAGS, decode, encode

__all__ = [
    "ALLOWED_TAGS",
    "TELEGRAM_MAX_ENTITIES",
    "TELEGRAM_MAX_TEXT",
    "entity_count",
    "plain_text",
    "render_html",
    "render_parts",
    "render_styled",
    "split_message",
    "split_plain",
    "telegram_length",
    "utf16_len",
    "visible_text",
]

TELEGRAM_MAX_TEXT = 4096
"""Telegram's message limit, in UTF-16 code units of visible text."""

TELEGRAM_MAX_ENTITIES = 100
"""Formatting entities Telegram honours in one message; the ones after it are shown plain."""


def render_styled(markdown: str) -> Styled:
    """The text and style ranges Telegram shows for ``markdown`` (links, quotes, code blocks)."""
    return render(markdown, TELEGRAM)


def render_html(markdown: str) -> str:
    """Render Markdown as balanced HTML that Telegram's ``parse_mode=HTML`` accepts.

    Half-written Markdown (an unclosed fence or ``**``) still renders to valid HTML, so
    this is safe for every edit of a streamed answer.
    """
    return encode(render_styled(markdown))


def plain_text(markdown: str) -> str:
    """Render Markdown as readable plain text: the fallback when Telegram refuses the HTML.

    Markers are removed, code is kept verbatim, and a link keeps its URL in parentheses.
    """
    return render(markdown, PLAIN).text


def visible_text(html_text: str) -> str:
    """The text Telegram shows for ``html_text``: tags removed, entities decoded."""
    return decode(html_text).text


def telegram_length(html_text: str) -> int:
    """Length of ``html_text`` as Telegram counts it: UTF-16 units of the visible text."""
    return utf16_len(visible_text(html_text))


def split_message(html_text: str, limit: int = TELEGRAM_MAX_TEXT) -> list[str]:
    """Split Telegram HTML into messages of at most ``limit`` UTF-16 units of visible text.

    Cuts are made at a blank line outside code, then a line break outside code, then a
    line break inside code, then a space, and only then anywhere. The elements open at a
    cut are closed at the end of one part and reopened at the start of the next, so each
    part is balanced HTML and a code block keeps its language. Parts whose visible text
    would be blank are dropped; an empty input gives ``[]``.
    """
    return [encode(part) for part in split_styled(decode(html_text), limit)]


def split_plain(text: str, limit: int = TELEGRAM_MAX_TEXT) -> list[str]:
    """Split plain text as :func:`split_message` splits HTML (no code blocks are known here)."""
    return split_text(text, limit)


def render_parts(markdown: str, limit: int = TELEGRAM_MAX_TEXT) -> list[str]:
    """Render Markdown and split it into Telegram HTML messages: the usual entry point.

    Besides the length limit, no part carries more than :data:`TELEGRAM_MAX_ENTITIES`
    formatting entities: Telegram silently drops the formatting after the hundredth.
    """
    return list(_rendered(markdown, limit))


@functools.lru_cache(maxsize=64)
def _rendered(markdown: str, limit: int) -> tuple[str, ...]:
    """The parts of ``markdown``, kept for the texts rendered last: an answer's final text is
    most often the text its last draft or edit showed, rendered again (a short answer's
    rendering takes 0.2 to 1 ms, mostly markdown-it)."""
    out: list[str] = []
    for part in split_styled(render_styled(markdown), limit):
        html_part = encode(part)
        if entity_count(html_part, part.text) <= TELEGRAM_MAX_ENTITIES:
            out.append(html_part)  # most parts: their visible text is known, not parsed back
        else:
            out += _within_entity_limit(html_part)
    return tuple(out)


_ENTITY_OPEN = re.compile(r"<(?:b|strong|i|em|u|ins|s|strike|del|tg-spoiler|span|a|code|pre|blockquote)[\s>]")


# What Telegram turns into entities by itself in the visible text: links, @mentions,
# #hashtags, $cashtags, /commands and e-mail addresses. They count toward the 100 as well.
_AUTO_ENTITY = re.compile(
    r"(?:https?://|www\.)\S+|[\w.+-]+@[\w-]+\.[\w.-]+|(?<![\w@])@\w{3,}|(?<![\w#])#\w+|(?<![\w$])\$[A-Z]{1,8}\b"
    r"|(?<![\w/])/[A-Za-z]\w*"
)


def entity_count(html_text: str, visible: str | None = None) -> int:
    """Entities of Telegram HTML: its tags and what Telegram detects in the text (an upper bound:
    a ``<pre><code>`` block counts twice, a URL inside code counts too). ``visible``: the text
    Telegram shows for it, when known."""
    if visible is None:
        visible = visible_text(html_text)
    return len(_ENTITY_OPEN.findall(html_text)) + len(_AUTO_ENTITY.findall(visible))


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
