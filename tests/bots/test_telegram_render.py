"""Tests for bots.telegram.render: Telegram-safe HTML, plain fallback and splitting by visible length."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bots.telegram.render import (
    TELEGRAM_MAX_ENTITIES,
    TELEGRAM_MAX_TEXT,
    entity_count,
    plain_text,
    render_html,
    render_parts,
    split_message,
    split_plain,
    telegram_length,
    utf16_len,
    visible_text,
)

# ---------------------------------------------------------------------------- the checker

# What render_html emits; a subset of what Telegram accepts.
EMITTED_TAGS = {"b", "i", "s", "code", "pre", "a", "blockquote"}
ALLOWED_ENTITIES = {"lt", "gt", "amp", "quot"}


class TelegramHTMLChecker(HTMLParser):
    """Fail on anything Telegram's HTML parser would reject or silently mangle."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in EMITTED_TAGS:
            self.errors.append(f"tag <{tag}> not allowed")
        if tag == "a" and [k for k, _ in attrs] != ["href"]:
            self.errors.append(f"<a> with attributes {attrs}")
        if (
            tag == "code"
            and attrs
            and not (len(attrs) == 1 and attrs[0][0] == "class" and str(attrs[0][1]).startswith("language-"))
        ):
            self.errors.append(f"<code> with attributes {attrs}")
        if tag not in ("a", "code") and attrs:
            self.errors.append(f"<{tag}> with attributes {attrs}")
        if tag == "code" and attrs and self.stack[-1:] != ["pre"]:
            self.errors.append("<code class> outside <pre>")
        language_code = tag == "code" and bool(attrs) and self.stack[-1:] == ["pre"]
        if ("pre" in self.stack or "code" in self.stack) and not language_code:
            self.errors.append(f"<{tag}> inside code")
        if tag in ("code", "pre") and {"b", "i", "s"} & set(self.stack):
            self.errors.append(f"<{tag}> inside formatting")  # Telegram: code is part of no other entity
        if tag in ("pre", "blockquote") and "blockquote" in self.stack:
            self.errors.append(f"<{tag}> inside <blockquote>")
        if tag == "a" and "a" in self.stack:
            self.errors.append("nested <a>")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> does not close {self.stack[-1:]}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        for ch in "<>&":
            if ch in data:
                self.errors.append(f"raw {ch!r} in text {data[:40]!r}")

    def handle_entityref(self, name: str) -> None:
        if name not in ALLOWED_ENTITIES:
            self.errors.append(f"entity &{name};")

    def handle_charref(self, name: str) -> None:
        pass

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.errors.append(f"self-closing <{tag}/>")

    def handle_comment(self, data: str) -> None:
        self.errors.append("comment")

    def handle_decl(self, decl: str) -> None:
        self.errors.append("declaration")


def check_html(html_text: str) -> None:
    """Assert html_text is balanced, properly nested Telegram HTML using only allowed tags."""
    checker = TelegramHTMLChecker()
    checker.feed(html_text)
    checker.close()
    if checker.rawdata:  # html.parser keeps an unterminated "<..." here
        checker.errors.append(f"unparsed tail {checker.rawdata[:40]!r}")
    if checker.stack:
        checker.errors.append(f"unclosed {checker.stack}")
    assert not checker.errors, (checker.errors, html_text)


def check_parts(whole: str, parts: list[str], limit: int) -> None:
    """The splitting contract, checked on the rendered HTML ``whole`` and its ``parts``.

    1. every part is valid Telegram HTML on its own (so every <pre> closes in its part);
    2. every part's visible text is non-blank and at most ``limit`` UTF-16 units;
    3. visible(whole) == g0 + p0 + g1 + p1 + ... + pn + g(n+1), where p_i is the visible text of
       part i and every gap g_i is whitespace only (possibly empty): the cuts drop nothing but
       the whitespace they were made at, and nothing is duplicated or reordered;
    4. a code block (<pre>) that fits in one message is never split.
    """
    texts = [visible_text(p) for p in parts]
    for part, text in zip(parts, texts, strict=True):
        check_html(part)
        assert text.strip(), part
        assert utf16_len(text) <= limit
        assert telegram_length(part) == utf16_len(text)
    pattern = r"\s*" + r"\s*".join(re.escape(t) for t in texts) + r"\s*"
    assert re.fullmatch(pattern, visible_text(whole)), (texts, visible_text(whole))
    for block in re.findall(r"<pre>.*?</pre>", whole, flags=re.S):
        body = visible_text(block)
        if utf16_len(body) <= limit:
            assert any(body in visible_text(p) for p in parts if "<pre>" in p), body


# ---------------------------------------------------------------------------- rendering

RENDER_CASES = [
    ("plain", "Hello, world.", "Hello, world."),
    ("bold", "**bold** and __also__", "<b>bold</b> and <b>also</b>"),
    ("italic", "*it* and _it_", "<i>it</i> and <i>it</i>"),
    ("strike", "~~gone~~", "<s>gone</s>"),
    ("nested inline", "***both*** **b *bi***", "<i><b>both</b></i> <b>b <i>bi</i></b>"),
    ("inline code", "run `ls -l`", "run <code>ls -l</code>"),
    ("inline code escaped", "`a < b && c > d`", "<code>a &lt; b &amp;&amp; c &gt; d</code>"),
    ("paragraphs", "one\n\ntwo", "one\n\ntwo"),
    ("soft break kept", "one\ntwo", "one\ntwo"),
    ("hard break", "one  \ntwo", "one\ntwo"),
    ("heading", "# Title\n\ntext", "<b>Title</b>\n\ntext"),
    ("heading with markup", "## A *b*", "<b>A <i>b</i></b>"),
    ("hr", "a\n\n---\n\nb", "a\n\n──────────\n\nb"),
    ("link", "[site](https://example.org/a)", '<a href="https://example.org/a">site</a>'),
    ("autolink", "<https://example.org>", '<a href="https://example.org">https://example.org</a>'),
    ("mailto", "[me](mailto:me@example.org)", '<a href="mailto:me@example.org">me</a>'),
    ("tg link", "[chat](tg://resolve?domain=x)", '<a href="tg://resolve?domain=x">chat</a>'),
    ("relative link is text", "[home](/index.html)", "home"),
    ("ftp link is text", "[f](ftp://example.org/f)", "f"),
    ("javascript link is text", "[x](javascript:alert(1))", "[x](javascript:alert(1))"),
    ("ampersand in href", "[q](https://e.org/?a=1&b=2)", '<a href="https://e.org/?a=1&amp;b=2">q</a>'),
    ("quote in href", '[q](<https://e.org/a"b>)', '<a href="https://e.org/a%22b">q</a>'),
    ("code leaves bold", "**use `x` now**", "<b>use </b><code>x</code><b> now</b>"),
    ("code leaves nested formatting", "*a **b `c`***", "<i>a <b>b </b></i><code>c</code>"),
    ("code in link is text", "[`x`](https://e.org)", '<a href="https://e.org">x</a>'),
    ("bold link", "**[x](https://e.org)**", '<b><a href="https://e.org">x</a></b>'),
    ("image as link", "![a cat](https://e.org/cat.png)", '<a href="https://e.org/cat.png">a cat</a>'),
    ("image without alt", "![](https://e.org/c.png)", '<a href="https://e.org/c.png">image</a>'),
    ("fence with language", "```python\nprint(1)\n```", '<pre><code class="language-python">print(1)</code></pre>'),
    ("fence without language", "```\nx = 1\n```", "<pre>x = 1</pre>"),
    ("fence info words", "```py title=x\nx\n```", '<pre><code class="language-py">x</code></pre>'),
    ("fence language sanitised", '```c"><b>\nx\n```', '<pre><code class="language-cb">x</code></pre>'),
    ("blank fence dropped", "a\n\n```\n \n\n```", "a"),
    ("fence keeps blank lines", "```\na\n\n\nb\n```", "<pre>a\n\n\nb</pre>"),
    ("indented code", "    a < b\n", "<pre>a &lt; b</pre>"),
    (
        "code escaped",
        "```c\nif (a < b && c) {}\n```",
        '<pre><code class="language-c">if (a &lt; b &amp;&amp; c) {}</code></pre>',
    ),
    ("bullet list", "- a\n- b", "• a\n• b"),
    ("ordered list", "1. a\n2. b", "1. a\n2. b"),
    ("ordered list start", "7. a\n8. b", "7. a\n8. b"),
    (
        "nested lists",
        "- a\n  - b\n    1. c\n    2. d\n- e",
        "• a\n  • b\n    1. c\n    2. d\n• e",
    ),
    ("loose list", "- a\n\n- b", "• a\n\n• b"),
    ("list item continuation", "1. a\n   more", "1. a\n   more"),
    (
        "code in list item",
        "1. Run:\n   ```sh\n   make\n   ```\n2. Done",
        '1. Run:\n<pre><code class="language-sh">make</code></pre>\n2. Done',
    ),
    ("blockquote", "> quoted\n> text", "<blockquote>quoted\ntext</blockquote>"),
    ("blockquote paragraphs", "> a\n>\n> b", "<blockquote>a\n\nb</blockquote>"),
    ("nested blockquote flattened", "> a\n>> b", "<blockquote>a\n\nb</blockquote>"),
    (
        "code leaves the quote",
        "> a\n> ```\n> x\n> ```\n> b",
        "<blockquote>a</blockquote>\n\n<pre>x</pre>\n\n<blockquote>b</blockquote>",
    ),
    (
        "table",
        "| name | n |\n|:-----|--:|\n| apple | 3 |\n| kiwi | 12 |",
        "<pre>name  |  n\n------+---\napple |  3\nkiwi  | 12</pre>",
    ),
    ("table escaped", "| a<b |\n|---|\n| **x** & y |", "<pre>a&lt;b\n-----\nx &amp; y</pre>"),
    (
        "raw html escaped",
        "<b>hi</b> <script>alert(1)</script>",
        "&lt;b&gt;hi&lt;/b&gt; &lt;script&gt;alert(1)&lt;/script&gt;",
    ),
    ("html block escaped", "<div>\n<i>x</i>\n</div>", "&lt;div&gt;\n&lt;i&gt;x&lt;/i&gt;\n&lt;/div&gt;"),
    ("ampersand", "Tom & Jerry &amp; co", "Tom &amp; Jerry &amp; co"),
    ("entity decoded then escaped", "&lt;tag&gt; &copy;", "&lt;tag&gt; ©"),
    ("quotes in text untouched", "say \"hi\" 'x'", "say \"hi\" 'x'"),
    ("emoji and astral", "**😀 𝔘𝔫𝔦** 👨‍👩‍👧", "<b>😀 𝔘𝔫𝔦</b> 👨‍👩‍👧"),
    ("empty", "", ""),
    ("only whitespace", "  \n\n \n", ""),
    ("empty emphasis dropped", "[](https://e.org) ** **", '<a href="https://e.org">https://e.org</a> ** **'),
    # Streaming: half-written Markdown still renders to balanced HTML.
    (
        "unclosed fence",
        "Look:\n\n```python\ndef f(x):\n    return x <",
        'Look:\n\n<pre><code class="language-python">def f(x):\n    return x &lt;</code></pre>',
    ),
    ("fence just opened", "Look:\n\n```python", "Look:"),
    ("unclosed bold", "this is **bold", "this is **bold"),
    ("unclosed code span", "use `rm -rf", "use `rm -rf"),
    ("unclosed link", "[docs](https://e.org", "[docs](https://e.org"),
]


@pytest.mark.parametrize(("markdown", "expected"), [c[1:] for c in RENDER_CASES], ids=[c[0] for c in RENDER_CASES])
def test_render_html(markdown: str, expected: str) -> None:
    html_text = render_html(markdown)
    assert html_text == expected
    check_html(html_text)


PLAIN_CASES = [
    ("markers removed", "**b** *i* ~~s~~ `c`", "b i s c"),
    ("heading", "# Title\n\nbody", "Title\n\nbody"),
    ("link keeps url", "[docs](https://e.org/d)", "docs (https://e.org/d)"),
    ("autolink once", "<https://e.org>", "https://e.org"),
    ("code verbatim", "```python\nif a < b and c & d:\n    **x**\n```", "if a < b and c & d:\n    **x**"),
    ("lists", "- a\n  1. b", "• a\n  1. b"),
    ("raw html stays text", "<b>x</b> & y", "<b>x</b> & y"),
    ("quote", "> a\n> b", "a\nb"),
    ("table", "| a | b |\n|---|---|\n| 1 | 2 |", "a | b\n--+--\n1 | 2"),
]


@pytest.mark.parametrize(("markdown", "expected"), [c[1:] for c in PLAIN_CASES], ids=[c[0] for c in PLAIN_CASES])
def test_plain_text(markdown: str, expected: str) -> None:
    assert plain_text(markdown) == expected


STREAMED_ANSWER = """# Sorting in *Python*

Use `sorted()` for a **new list** and `list.sort()` to sort ~~in place~~ in place; see [the docs](https://docs.python.org/3/howto/sorting.html).

1. Pass `key=`:
   ```python
   rows = sorted(rows, key=lambda r: (r.age < 30, r.name))
   ```
2. For *descending*, `reverse=True`.

> Note: sorting is **stable** & <fast>.

| method | returns |
|:--|--:|
| sorted | list |

```
done 😀 𝔘
```
"""


def test_every_prefix_of_a_streamed_answer_is_valid_html() -> None:
    for end in range(len(STREAMED_ANSWER) + 1):
        html_text = render_html(STREAMED_ANSWER[:end])
        check_html(html_text)
        for part in split_message(html_text, limit=40):
            check_html(part)


@given(st.text())
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_render_never_raises_and_is_always_valid(text: str) -> None:
    html_text = render_html(text)
    check_html(html_text)
    plain_text(text)


@pytest.mark.parametrize(
    "markdown",
    [
        "*" * 20_000 + "x" + "*" * 20_000,  # emphasis nesting is not bounded by markdown-it
        "_" * 20_000 + "x" + "_" * 20_000,
        "[a" * 5_000 + "](https://e.org)" * 5_000,
        "[" * 20_000,
        "> " * 2_000 + "x",
        "- " * 2_000 + "x",
        "|a" * 500 + "|\n" + "|-" * 500 + "|\n" + "|b" * 500 + "|",
    ],
    ids=["stars", "underscores", "links", "brackets", "quotes", "lists", "wide table"],
)
def test_pathological_input_renders(markdown: str) -> None:
    html_text = render_html(markdown)
    check_html(html_text)
    check_parts(html_text, split_message(html_text), TELEGRAM_MAX_TEXT)
    plain_text(markdown)


@given(st.text(alphabet=st.sampled_from("*_`~[]()<>&\"'#>-+|!\n \\x1😀")))
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_markdown_punctuation_soup_is_valid(text: str) -> None:
    check_html(render_html(text))


# ---------------------------------------------------------------------------- lengths


@pytest.mark.parametrize(
    ("text", "units"),
    [("", 0), ("abc", 3), ("é", 1), ("😀", 2), ("𝔘𝔫", 4), ("👨‍👩‍👧", 8), ("中文", 2)],
)
def test_utf16_len(text: str, units: int) -> None:
    assert utf16_len(text) == units
    assert utf16_len(text) == len(text.encode("utf-16-le")) // 2


def test_telegram_length_counts_visible_text() -> None:
    assert telegram_length('<b>a</b> &lt;&amp;&gt; <a href="https://e.org/long">x</a>') == 7
    assert telegram_length('<pre><code class="language-py">😀</code></pre>') == 2
    assert telegram_length("&quot;&#39;&#x27;") == 3


# ---------------------------------------------------------------------------- splitting


def test_short_message_is_one_part() -> None:
    html_text = render_html("**hi** there")
    assert split_message(html_text) == [html_text]
    assert split_message("") == []


def test_split_prefers_paragraphs() -> None:
    html_text = render_html("aaaa bbbb\n\ncccc dddd\n\neeee")
    assert split_message(html_text, limit=20) == ["aaaa bbbb\n\ncccc dddd", "eeee"]
    assert split_message(html_text, limit=12) == ["aaaa bbbb", "cccc dddd", "eeee"]


def test_split_then_lines_then_words_then_hard() -> None:
    assert split_message("aaa bbb\nccc ddd", limit=10) == ["aaa bbb", "ccc ddd"]
    assert split_message("aaa bbb ccc ddd", limit=10) == ["aaa bbb", "ccc ddd"]
    assert split_message("abcdefghij" * 2, limit=8) == ["abcdefgh", "ijabcdef", "ghij"]


def test_split_closes_and_reopens_inline_tags() -> None:
    parts = split_message('<b>one two <i>three four</i></b> <a href="https://e.org">five six</a>', limit=10)
    assert parts == [
        "<b>one two</b>",
        "<b><i>three four</i></b>",
        '<a href="https://e.org">five six</a>',
    ]


def test_split_keeps_whole_code_block_in_next_part() -> None:
    code = "\n".join(f"line {i}" for i in range(5))
    html_text = render_html(f"intro text\n\n```go\n{code}\n```\n\nafter")
    parts = split_message(html_text, limit=42)
    assert parts == ["intro text", f'<pre><code class="language-go">{code}</code></pre>\n\nafter']


def test_split_long_code_block_reopens_with_language() -> None:
    code = "\n".join(f"x{i} = {i} < {i + 1}" for i in range(30))
    html_text = render_html(f"```python\n{code}\n```")
    parts = split_message(html_text, limit=100)
    assert len(parts) > 1
    rebuilt = []
    for part in parts:
        assert part.startswith('<pre><code class="language-python">')
        assert part.endswith("</code></pre>")
        rebuilt.append(visible_text(part))
    assert "\n".join(rebuilt) == code  # cut at line breaks only
    check_parts(html_text, parts, 100)


def test_split_long_line_in_code_by_words_then_hard() -> None:
    html_text = render_html("```\n" + "word " * 30 + "\n" + "z" * 50 + "\n```")
    parts = split_message(html_text, limit=20)
    check_parts(html_text, parts, 20)
    assert all(p.startswith("<pre>") and p.endswith("</pre>") for p in parts)


def test_split_blockquote_is_reopened() -> None:
    html_text = render_html("> " + " ".join(["quoted"] * 10))
    parts = split_message(html_text, limit=30)
    check_parts(html_text, parts, 30)
    assert all(p.startswith("<blockquote>") and p.endswith("</blockquote>") for p in parts)


def test_split_never_separates_surrogates_or_zwj_sequences() -> None:
    family = "👨‍👩‍👧"
    parts = split_message(family * 10, limit=17)
    assert all(utf16_len(p) <= 17 for p in parts)
    assert "".join(parts) == family * 10
    assert all(p.startswith("👨") and p.endswith("👧") for p in parts)
    astral = split_message("😀" * 5, limit=3)
    assert astral == ["😀"] * 5
    flags = "🇩🇪🇫🇷🇯🇵"
    assert split_message(flags, limit=6) == ["🇩🇪", "🇫🇷", "🇯🇵"]  # 4 units per flag
    assert split_message("👍🏽" * 3, limit=6) == ["👍🏽", "👍🏽", "👍🏽"]
    assert split_message("e\u0301" * 4, limit=3) == ["e\u0301", "e\u0301", "e\u0301", "e\u0301"]
    zalgo = "a" + "\u0301" * 100
    assert "".join(split_message(zalgo, limit=40)) == zalgo  # no boundary at all: cut anyway


def test_split_counts_entities_as_one_character() -> None:
    html_text = "&lt;" * 10 + " " + "&amp;" * 10
    assert split_message(html_text, limit=10) == ["&lt;" * 10, "&amp;" * 10]


def test_split_rejects_impossible_limit() -> None:
    with pytest.raises(ValueError):
        split_message("abc", limit=1)


def test_split_plain() -> None:
    assert split_plain("") == []
    assert split_plain("short") == ["short"]
    assert split_plain("para one\n\npara two", limit=10) == ["para one", "para two"]
    assert split_plain("a < b & c d", limit=6) == ["a < b", "& c d"]  # no escaping in plain text
    text = plain_text(STREAMED_ANSWER) * 20
    parts = split_plain(text, limit=500)
    assert all(utf16_len(p) <= 500 for p in parts)
    assert re.fullmatch(r"\s*" + r"\s*".join(re.escape(p) for p in parts) + r"\s*", text)


def _long_answer() -> str:
    """About 10,000 characters: prose, lists, emoji and three code blocks, one longer than a message."""
    prose = (
        "Ferry keeps the conversation in a *tinydb* file, so a restart loses nothing 😀. "
        "Each turn is written as soon as it is complete, and **usage** is counted per user & chat. "
    )
    small_code = "\n".join(f"    total += price[{i}] * qty[{i}]  # < 10 € 𝔘" for i in range(12))
    big_code = "\n".join(f"SELECT id, name FROM users WHERE id < {i} AND name <> 'x{i}';" for i in range(110))
    sections = [
        "# Migration plan",
        prose * 6,
        "1. Stop the bot.\n2. Back up `data/`.\n   - keep **two** copies\n   - check sizes\n3. Start it again.",
        f"```python\ndef total(price, qty):\n    total = 0\n{small_code}\n    return total\n```",
        prose * 8,
        f"```sql\n{big_code}\n```",
        "> Remember: <never> edit the file by hand & keep backups.",
        prose * 5,
        "```\nplain block\n```",
        "Done. " + "x" * 300,
    ]
    return "\n\n".join(sections)


def test_ten_thousand_character_answer() -> None:
    markdown = _long_answer()
    assert 9_500 <= len(markdown) <= 12_000
    html_text = render_html(markdown)
    check_html(html_text)
    parts = split_message(html_text)
    assert len(parts) >= 3
    check_parts(html_text, parts, TELEGRAM_MAX_TEXT)
    # The SQL block is longer than one message: split at line ends, language kept in each piece.
    sql_pieces = [p for p in parts if '<code class="language-sql">' in p]
    assert len(sql_pieces) >= 2
    sql_lines = [line for p in sql_pieces for line in visible_text(p).splitlines() if line.startswith("SELECT")]
    assert len(sql_lines) == 110
    assert render_parts(markdown) == parts
    plain_parts = split_plain(plain_text(markdown))
    assert all(utf16_len(p) <= TELEGRAM_MAX_TEXT for p in plain_parts)


# ---------------------------------------------------------------------------- properties

ASTRAL = "😀🎉👍𝔘𝔫𝔦𝔠𝔬𝔡𝔢🀄🧪"
WORD_CHARS = "abcxyzé中" + ASTRAL + "<>&\"'"

words = st.one_of(
    st.text(alphabet=WORD_CHARS, min_size=1, max_size=12),
    st.text(alphabet="ab😀", min_size=50, max_size=300),  # long words without spaces
    st.sampled_from(["**bold**", "*it*", "~~s~~", "`a < b`", '[l](https://e.org/?q="x"&y=1)', "😀", "👨‍👩‍👧"]),
)
sentence = st.lists(words, min_size=1, max_size=40).map(" ".join)
paragraph = st.lists(sentence, min_size=1, max_size=4).map("\n".join)
code_line = st.text(alphabet="abc xyz<>&=():😀\t", max_size=60)
code_block = st.builds(
    lambda lang, lines: f"```{lang}\n" + "\n".join(lines) + "\n```",
    st.sampled_from(["", "python", "sql", "c++", "sh"]),
    st.lists(code_line, min_size=1, max_size=120),
)
list_block = st.builds(
    lambda marker, items: "\n".join(f"{marker} {item}" for item in items),
    st.sampled_from(["-", "*", "1."]),
    st.lists(sentence, min_size=1, max_size=8),
)
nested_list = st.lists(sentence, min_size=2, max_size=5).map(
    lambda items: "\n".join(("  " * (i % 3)) + "- " + item for i, item in enumerate(items))
)
block = st.one_of(
    paragraph,
    code_block,
    list_block,
    nested_list,
    sentence.map(lambda s: "## " + s),
    paragraph.map(lambda p: "> " + p.replace("\n", "\n> ")),
    st.just("---"),
)
documents = st.lists(block, min_size=1, max_size=12).map("\n\n".join)


@given(documents, st.sampled_from([16, 50, 300, 1000]))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_split_properties_small_limits(markdown: str, limit: int) -> None:
    html_text = render_html(markdown)
    check_html(html_text)
    check_parts(html_text, split_message(html_text, limit), limit)


@given(st.lists(documents, min_size=1, max_size=6).map("\n\n".join))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_split_properties_telegram_limit(markdown: str) -> None:
    html_text = render_html(markdown)
    check_parts(html_text, split_message(html_text), TELEGRAM_MAX_TEXT)


@given(documents, st.sampled_from([16, 50, 300]))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_split_plain_properties(markdown: str, limit: int) -> None:
    text = plain_text(markdown)
    parts = split_plain(text, limit)
    assert all(p.strip() and utf16_len(p) <= limit for p in parts)
    assert re.fullmatch(r"\s*" + r"\s*".join(re.escape(p) for p in parts) + r"\s*", text)


@given(st.text(), st.integers(min_value=2, max_value=64))
@settings(max_examples=300, deadline=None)
def test_split_any_text(text: str, limit: int) -> None:
    html_text = render_html(text)
    check_parts(html_text, split_message(html_text, limit), limit)


def test_no_part_carries_more_entities_than_telegram_honours() -> None:
    markdown = "\n".join(f"- **item {i}** with `code {i}` and a [link](https://example.org/{i})" for i in range(120))
    parts = render_parts(markdown)
    assert len(parts) > 1  # 360 entities in far fewer than 4,096 characters
    assert all(entity_count(part) <= TELEGRAM_MAX_ENTITIES for part in parts)
    assert "".join(visible_text(p) for p in parts).replace("\n", "") == visible_text(
        render_html(markdown)
    ).replace("\n", "")


def test_links_mentions_and_hashtags_telegram_detects_count_toward_the_cap() -> None:
    # No formatting at all, but Telegram makes an entity of every bare URL, @mention and #hashtag.
    markdown = " ".join(f"https://example.org/{i} @person{i} #topic{i}" for i in range(60))
    parts = render_parts(markdown)
    assert len(parts) > 1  # 180 detected entities in far fewer than 4,096 characters
    assert all(entity_count(part) <= TELEGRAM_MAX_ENTITIES for part in parts)
    assert entity_count("see https://example.org and @someone about #news") == 3


def test_a_text_rendered_again_gives_the_same_parts_in_a_list_of_its_own() -> None:
    markdown = "An answer with **bold**, `code` and a [link](https://example.com)."
    first = render_parts(markdown)
    first.append("changed by its caller")
    assert render_parts(markdown) == first[:-1] == [render_html(markdown)]
