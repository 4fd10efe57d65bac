"""Where to cut a long text into parts that fit a messenger's limit.

Best first: between paragraphs, between lines, between lines of code, between words (code
words last), and only then inside a word, never inside a character cluster (an emoji with
its modifiers, a flag). Lengths count UTF-16 units, as Telegram counts them.
"""

from __future__ import annotations

import bisect
import unicodedata
from collections.abc import Sequence

from bots.rendering.styled import utf16_len

_JOINERS = frozenset({"\u200d", "\ufe0e", "\ufe0f"})


# Cut levels, best first. A cut drops the whitespace it is made at.
_PARAGRAPH, _LINE, _CODE_LINE, _WORD, _CODE_WORD = range(5)


def cut_ranges(text: str, in_pre: Sequence[bool], limit: int) -> list[tuple[int, int]]:
    """Return ``(start, end)`` ranges of ``text``, each at most ``limit`` UTF-16 units.

    Between two consecutive ranges lies only whitespace (the separator cut at), or nothing
    after a hard cut.
    """
    if limit < 2:
        raise ValueError("limit must be at least 2 UTF-16 units")
    n = len(text)
    if n <= limit // 2 or utf16_len(text) <= limit:
        return [(0, n)] if n else []  # fits whole (most answers): no offsets per character
    offsets = [0]
    for ch in text:
        offsets.append(offsets[-1] + (2 if ord(ch) > 0xFFFF else 1))
    ranges: list[tuple[int, int]] = []
    start = 0
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
