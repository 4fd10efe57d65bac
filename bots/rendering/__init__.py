"""One renderer for every messenger: Markdown → plain text plus style ranges.

:func:`render` walks the Markdown once (see :mod:`.markdown`); Telegram encodes the result as
HTML (``bots.telegram.render_html``), Signal as signal-cli-rest-api's styled markup
(``bots.signal.markup``), the terminal as rich styles or ANSI (:mod:`.terminal`).
:func:`split_styled` cuts it into messages of a messenger's length.
"""

from bots.rendering.markdown import PLAIN, SIGNAL, TELEGRAM, TERMINAL, Profile, render
from bots.rendering.split import split_styled, split_text
from bots.rendering.styled import FORMATTING, Span, Style, Styled, join, utf16_len, utf16_offsets
from bots.rendering.terminal import ansi, render_terminal, rich_styles

__all__ = [
    "FORMATTING",
    "PLAIN",
    "SIGNAL",
    "TELEGRAM",
    "TERMINAL",
    "Profile",
    "Span",
    "Style",
    "Styled",
    "ansi",
    "join",
    "render",
    "render_terminal",
    "rich_styles",
    "split_styled",
    "split_text",
    "utf16_len",
    "utf16_offsets",
]
