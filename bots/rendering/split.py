"""Split styled text into messages of a messenger's length, ranges closed and reopened per part.

Where to cut is :func:`bots.rendering.cuts.cut_ranges` (paragraph, line, code line, word,
then hard; never inside a character cluster). A code block is only cut when it is longer
than a message; each piece keeps its ``pre`` range, language included.
"""

from __future__ import annotations

from bots.rendering.cuts import cut_ranges
from bots.rendering.styled import Styled


def split_styled(styled: Styled, limit: int) -> list[Styled]:
    """Parts of at most ``limit`` UTF-16 units; parts that would be blank are dropped."""
    text = styled.text
    in_pre = [False] * len(text)
    for span in styled.spans:
        if span.style == "pre":
            in_pre[span.start : span.end] = [True] * (span.end - span.start)
    return [styled.slice(a, b) for a, b in cut_ranges(text, in_pre, limit) if text[a:b].strip()]


def split_text(text: str, limit: int) -> list[str]:
    """Split plain text as :func:`split_styled` splits styled text (no code blocks are known)."""
    return [text[a:b] for a, b in cut_ranges(text, [False] * len(text), limit) if text[a:b].strip()]
