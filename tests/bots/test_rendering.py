"""Tests for bots.rendering: the one Markdown walker, its ranges, splitting and the terminal encoders."""

from __future__ import annotations

import gc
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it.tree import SyntaxTreeNode

from bots.rendering import (
    PLAIN,
    SIGNAL,
    TELEGRAM,
    TERMINAL,
    Profile,
    Span,
    Styled,
    ansi,
    render,
    render_terminal,
    rich_styles,
    split_styled,
    utf16_len,
)
from bots.signal.render import render_signal
from bots.telegram.render import plain_text, render_html, visible_text

PROFILES = [TELEGRAM, PLAIN, SIGNAL, TERMINAL]
markdownish = st.text(
    alphabet=st.sampled_from(list("ab *_~`|#>-[]()!\n1.😀é\\<:/ht")) | st.characters(),
    max_size=160,
)


def units(text: str) -> bytes:
    return text.encode("utf-16-le", "surrogatepass")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markdownish, st.sampled_from(PROFILES))
def test_ranges_stay_inside_the_text_and_utf16_offsets_cover_the_same_characters(
    markdown: str, profile: Profile
) -> None:
    styled = render(markdown, profile)
    if not profile.styles:
        assert styled.spans == ()
    for span in styled.spans:
        assert 0 <= span.start < span.end <= len(styled.text)
    for offset, length, span in styled.utf16():
        # The UTF-16 range is exactly the code-point range, counted as Telegram and Signal count.
        chunk = units(styled.text)[offset * 2 : (offset + length) * 2].decode("utf-16-le", "surrogatepass")
        assert chunk == styled.text[span.start : span.end]
        assert offset + length <= utf16_len(styled.text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markdownish)
def test_every_messenger_shows_the_walker_text(markdown: str) -> None:
    # One walker: Telegram's HTML, its plain fallback and Signal's text are the walker's text.
    assert visible_text(render_html(markdown)) == render(markdown, TELEGRAM).text
    assert plain_text(markdown) == render(markdown, PLAIN).text
    assert render_signal(markdown)[0] == render(markdown, SIGNAL).text.rstrip()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markdownish.filter(lambda s: "||" not in s), st.sampled_from([TELEGRAM, SIGNAL]))
def test_ranges_nest_properly_outermost_first(markdown: str, profile: Profile) -> None:
    styled = render(markdown, profile)
    for i, outer in enumerate(styled.spans):
        for inner in styled.spans[i + 1 :]:
            overlap = min(outer.end, inner.end) > max(outer.start, inner.start)
            # Spans are in opening order: a later span that overlaps an earlier one is inside it.
            assert not overlap or (outer.start <= inner.start and inner.end <= outer.end), (outer, inner)


def test_the_same_ranges_for_telegram_and_signal() -> None:
    markdown = "😀 **bold _both_** `code` ~~gone~~"
    assert render(markdown, TELEGRAM) == render(markdown, SIGNAL)
    styled = render(markdown, TELEGRAM)
    assert styled.text == "😀 bold both code gone"
    assert [(offset, length, span.style) for offset, length, span in styled.utf16()] == [
        (3, 9, "bold"),
        (8, 4, "italic"),
        (13, 4, "code"),
        (18, 4, "strike"),
    ]


@pytest.mark.parametrize(
    ("profile", "text", "spans"),
    [
        (TELEGRAM, "see docs", [Span(4, 8, "link", "https://e.org")]),
        (SIGNAL, "see docs (https://e.org)", []),
        (PLAIN, "see docs (https://e.org)", []),
    ],
)
def test_links_by_profile(profile: Profile, text: str, spans: list[Span]) -> None:
    assert render("see [docs](https://e.org)", profile) == Styled(text, tuple(spans))


def test_code_block_keeps_its_language_in_every_part() -> None:
    code = "\n".join(f"line {i}" for i in range(12))
    styled = render(f"intro\n\n```python\n{code}\n```", TELEGRAM)
    parts = split_styled(styled, 30)
    assert parts[0] == Styled("intro")
    pieces = parts[1:]
    assert len(pieces) > 1
    for part in pieces:
        assert part.spans == (Span(0, len(part.text), "pre", "python"),)  # reopened, with its language
    assert "\n".join(p.text for p in pieces) == code  # cut at line ends only


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markdownish, st.sampled_from([4, 16, 50]))
def test_split_styled_keeps_text_and_styles(markdown: str, limit: int) -> None:
    styled = render(markdown, SIGNAL)
    parts = split_styled(styled, limit)
    texts = [p.text for p in parts]
    assert all(t.strip() and utf16_len(t) <= limit for t in texts)
    assert re.fullmatch(r"\s*" + r"\s*".join(re.escape(t) for t in texts) + r"\s*", styled.text)
    # Every styled character is still styled the same way in its part.
    styles_at = {i: sorted(styled.spans[k].style for k in stack) for i, stack in enumerate(styled.stacks())}
    start = 0
    for part in parts:
        at = styled.text.index(part.text, start)
        for j, stack in enumerate(part.stacks()):
            assert sorted(part.spans[k].style for k in stack) == styles_at[at + j]
        start = at + len(part.text)


def test_indented_keeps_styles_on_their_characters() -> None:
    styled = Styled("ab\ncd", (Span(1, 4, "bold"),))
    moved = styled.indented("- ", "  ")
    assert moved.text == "- ab\n  cd"
    (span,) = moved.spans
    assert moved.text[span.start : span.end] == "b\n  c"


def test_terminal_rich_styles() -> None:
    styled = render_terminal("# Title\n\n**b** and `c` > [x](https://e.org) ||s||")
    assert styled.text == "Title\n\nb and c > x (https://e.org) s"
    got = [(styled.text[a:b], style) for a, b, style in rich_styles(styled)]
    assert got == [("Title", "bold"), ("b", "bold"), ("c", "bold cyan"), ("s", "reverse")]


def test_terminal_ansi() -> None:
    assert ansi(render_terminal("a **b** `c`")) == "a \x1b[0m\x1b[1mb\x1b[0m \x1b[0m\x1b[1;36mc\x1b[0m"
    assert ansi(render_terminal("plain")) == "plain"
    nested = ansi(render_terminal("**b *i***"))
    assert nested == "\x1b[0m\x1b[1mb \x1b[0m\x1b[1;3mi\x1b[0m"


def test_terminal_links_keep_their_url_for_rich() -> None:
    styled = Styled("x", (Span(0, 1, "link", "https://e.org"),))
    assert rich_styles(styled) == [(0, 1, "underline blue link https://e.org")]


def test_a_render_leaves_no_syntax_tree_for_the_cycle_collector() -> None:
    """Every preview of a streaming answer is rendered: its tree is freed at once, not left as
    cycles (a node and its parent) for Python's cycle collector."""
    gc.collect()
    gc.disable()
    try:
        markdown = "# Title\n\n* a **bold** point\n* `code`, [a link](https://x.y)\n\n| a | b |\n|---|---|\n| 1 | 2 |"
        for _ in range(3):
            render(markdown)
        left = sum(isinstance(o, SyntaxTreeNode) for o in gc.get_objects())
    finally:
        gc.enable()
    assert left == 0
