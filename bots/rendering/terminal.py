"""Style ranges for a terminal: rich styles or ANSI escape codes.

With rich: ``styled = render_terminal(markdown)``, ``text = rich.text.Text(styled.text)``, then
``text.stylize(style, start, end)`` for each item of :func:`rich_styles`. Without it,
:func:`ansi` writes the same text with SGR escape codes.
"""

from __future__ import annotations

from bots.rendering.markdown import TERMINAL, render
from bots.rendering.styled import Styled

RICH_STYLES = {
    "bold": "bold",
    "italic": "italic",
    "strike": "strike",
    "underline": "underline",
    "spoiler": "reverse",
    "code": "bold cyan",
    "pre": "cyan",
    "quote": "dim",
    "link": "underline blue",
}
"""rich style for each text style (a link also gets ``link URL``)."""

_SGR = {
    "bold": "1",
    "italic": "3",
    "strike": "9",
    "underline": "4",
    "spoiler": "7",
    "code": "1;36",
    "pre": "36",
    "quote": "2",
    "link": "4;34",
}


def render_terminal(markdown: str) -> Styled:
    """Render ``markdown`` for a terminal (URLs written out, quotes marked with "> ")."""
    return render(markdown, TERMINAL)


def rich_styles(styled: Styled) -> list[tuple[int, int, str]]:
    """``(start, end, style)`` for ``rich.text.Text.stylize``: string offsets, outermost first."""
    out = []
    for span in styled.spans:
        style = RICH_STYLES[span.style]
        if span.style == "link" and span.value:
            style = f"{style} link {span.value}"
        out.append((span.start, span.end, style))
    return out


def ansi(styled: Styled) -> str:
    """``styled`` with ANSI SGR codes; every change of style resets and sets the codes anew."""
    stacks = styled.stacks()
    out: list[str] = []
    current: tuple[int, ...] = ()
    for ch, stack in zip(styled.text, stacks, strict=True):
        if stack != current:
            codes = ";".join(_SGR[styled.spans[k].style] for k in stack)
            out.append("\x1b[0m" + (f"\x1b[{codes}m" if codes else ""))
            current = stack
        out.append(ch)
    if current:
        out.append("\x1b[0m")
    return "".join(out)
