"""Render the model's Markdown as Signal text: plain text plus text-style ranges.

Signal has no markup. A message is plain text plus a list of style ranges, which
signal-cli (and signal-cli-rest-api) take as ``"start:length:STYLE"`` strings, with
``start`` and ``length`` counted in UTF-16 code units as Signal's apps count them.
The Markdown is walked once by :mod:`bots.rendering` (the walker every messenger shares);
here its ranges are only written as Signal's styles.
"""

from __future__ import annotations

import logging

from bots.rendering import SIGNAL, Style, render, utf16_len

log = logging.getLogger(__name__)

__all__ = ["BOLD", "ITALIC", "MONOSPACE", "SPOILER", "STRIKETHROUGH", "render_signal", "utf16_len"]

BOLD = "BOLD"
ITALIC = "ITALIC"
STRIKETHROUGH = "STRIKETHROUGH"
MONOSPACE = "MONOSPACE"
SPOILER = "SPOILER"

# Signal has no link, quote or underline style: links are written "text (url)", quotes "> ".
_SIGNAL_STYLE: dict[Style, str] = {
    "bold": BOLD,
    "italic": ITALIC,
    "strike": STRIKETHROUGH,
    "code": MONOSPACE,
    "pre": MONOSPACE,
    "spoiler": SPOILER,
}


def render_signal(markdown: str) -> tuple[str, list[str]]:
    """Render Markdown to ``(plain_text, ["start:length:STYLE", ...])`` for Signal.

    Headings become bold, code blocks monospace, list items ``"• "`` lines, links
    ``"text (url)"`` and ``||spoiler||`` a spoiler. Offsets are UTF-16 code units.
    Never raises: half-finished Markdown (while streaming) renders as well as it can,
    and anything unexpected falls back to the text as typed, without styles.
    """
    try:
        styled = render(markdown, SIGNAL).rstrip()
    except Exception:  # a reply must never be lost to a rendering bug
        log.exception("rendering Markdown for Signal failed; sending it as plain text")
        return markdown, []
    styles = sorted(
        (start, length, _SIGNAL_STYLE[span.style])
        for start, length, span in styled.utf16()
        if span.style in _SIGNAL_STYLE
    )
    return styled.text, [f"{start}:{length}:{style}" for start, length, style in dict.fromkeys(styles)]
