"""Markdown -> Signal plain text + UTF-16 style ranges."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bots.signal.markup import styled_markup
from bots.signal.render import render_signal, utf16_len
from tests.fakes.signal_server import parse_styled


def spans(text: str, styles: list[str]) -> list[tuple[str, str]]:
    """Each style as (STYLE, the text it covers), decoding UTF-16 offsets."""
    units = text.encode("utf-16-le", "surrogatepass")
    out = []
    for item in styles:
        start, length, style = item.split(":")
        chunk = units[int(start) * 2 : (int(start) + int(length)) * 2].decode("utf-16-le", "surrogatepass")
        out.append((style, chunk))
    return out


CASES = [
    ("plain", "hello", "hello", []),
    ("bold", "a **b** c", "a b c", [("BOLD", "b")]),
    ("italic", "*it*", "it", [("ITALIC", "it")]),
    ("strike", "~~gone~~", "gone", [("STRIKETHROUGH", "gone")]),
    ("inline code", "run `ls -l` now", "run ls -l now", [("MONOSPACE", "ls -l")]),
    ("heading", "# Title\n\nbody", "Title\n\nbody", [("BOLD", "Title")]),
    ("fence", "```python\nprint(1)\n```", "print(1)", [("MONOSPACE", "print(1)")]),
    ("bullets", "- one\n- two", "• one\n• two", []),
    ("nested bullets", "- one\n  - two", "• one\n  • two", []),
    ("ordered", "3. c\n4. d", "3. c\n4. d", []),
    ("link", "[docs](https://x.org)", "docs (https://x.org)", []),
    ("autolink", "<https://x.org>", "https://x.org", []),
    ("spoiler", "a ||secret|| b", "a secret b", [("SPOILER", "secret")]),
    ("nested styles", "**bold _both_**", "bold both", [("BOLD", "bold both"), ("ITALIC", "both")]),
    ("paragraphs", "one\n\ntwo", "one\n\ntwo", []),
    ("quote", "> said", "> said", []),
    ("rule", "a\n\n---\n\nb", "a\n\n⸻\n\nb", []),
    ("table", "|a|b|\n|-|-|\n|1|2|", "a | b\n1 | 2", [("BOLD", "a"), ("BOLD", "b")]),
    ("half bold while streaming", "**unfinish", "**unfinish", []),
    ("half spoiler while streaming", "x ||hid", "x ||hid", []),
    ("unclosed fence while streaming", "```\ncode", "code", [("MONOSPACE", "code")]),
    ("empty", "", "", []),
    ("only spaces", "   \n  ", "", []),
]


@pytest.mark.parametrize(("name", "markdown", "text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_render_table(name: str, markdown: str, text: str, expected: list[tuple[str, str]]) -> None:
    got_text, styles = render_signal(markdown)
    assert got_text == text
    assert sorted(spans(got_text, styles)) == sorted(expected)


def test_emoji_before_styled_range_shifts_offsets_in_utf16_units() -> None:
    text, styles = render_signal("😀👍 **bold**")
    assert text == "😀👍 bold"
    # Two astral emoji are 4 UTF-16 units (but 2 code points), plus the space.
    assert styles == ["5:4:BOLD"]
    assert spans(text, styles) == [("BOLD", "bold")]


def test_style_formats_are_signal_cli_strings() -> None:
    _, styles = render_signal("**a** *b* ~~c~~ `d` ||e||")
    for item in styles:
        start, length, style = item.split(":")
        assert start.isdigit() and length.isdigit() and int(length) > 0
        assert style in {"BOLD", "ITALIC", "STRIKETHROUGH", "MONOSPACE", "SPOILER"}


def test_utf16_len() -> None:
    assert utf16_len("a") == 1
    assert utf16_len("é") == 1
    assert utf16_len("😀") == 2


markdownish = st.text(
    alphabet=st.sampled_from(list("ab *_~`|#>-[]()!\n1.😀é\\<")) | st.characters(),
    max_size=120,
)


@settings(max_examples=400, deadline=None)
@given(markdownish)
def test_never_raises_and_ranges_stay_inside_the_text(markdown: str) -> None:
    text, styles = render_signal(markdown)
    total = utf16_len(text)
    for item in styles:
        start, length, style = item.split(":")
        assert int(start) >= 0 and int(length) > 0
        assert int(start) + int(length) <= total
        assert style in {"BOLD", "ITALIC", "STRIKETHROUGH", "MONOSPACE", "SPOILER"}


@settings(max_examples=200, deadline=None)
@given(markdownish)
def test_every_prefix_renders(markdown: str) -> None:
    # While streaming, every prefix of an answer is rendered; none may fail.
    for cut in range(0, len(markdown) + 1, 7):
        render_signal(markdown[:cut])


# --- signal-cli-rest-api's styled markup --------------------------------------------------


@pytest.mark.parametrize(
    ("markdown", "markup"),
    [
        ("**Hello** there", "**Hello** there"),
        ("😀👍 **bold** and `code`", "😀👍 **bold** and `code`"),
        ("_it_ then **bold**", "*it* then **bold**"),
        ("**bold *inner* bold**", "**bold *inner* bold**"),  # nested styles work since 0.96
        ("~~gone~~ ||secret||", "~gone~ ||secret||"),
        ("plain words", "plain words"),
        ("2*3 is **six**", "2\\*3 is **six**"),  # a literal asterisk is escaped, the style kept
        ("a | b and **c**", "a \\| b and **c**"),
        ("||**x**||", "**||x||**"),
        ("***both***", "***both***"),  # the server's bold-and-italic token
        # Bold right before italic would read as "***": the italic is left out, nothing garbled.
        ("**a***b*", "**a**b"),
        ("a\\\\**b**", "a\\b"),  # no escape for a backslash: a marker after one is left out
    ],
)
def test_styled_markup(markdown: str, markup: str | None) -> None:
    text, styles = render_signal(markdown)
    assert styled_markup(text, styles) == markup


@given(st.text(alphabet=st.sampled_from("ab 😀*_~`|#\n-"), max_size=60))
@settings(max_examples=300, deadline=None)
def test_the_server_reads_back_exactly_the_text_and_a_subset_of_the_styles(markdown: str) -> None:
    text, styles = render_signal(markdown)
    markup = styled_markup(text, styles)
    shown, shown_styles = parse_styled(markup)
    assert shown == text
    assert set(shown_styles) <= set(styles)
