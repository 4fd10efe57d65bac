"""Text cleaned at the edge: what cannot be stored or sent is repaired, what a person wrote is kept."""

from __future__ import annotations

import json

import pytest

from core.text import REPLACEMENT, clean_text


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  a\r\nb\x00\t c \x7f ", "a\nb\t c"),
        ("hello", "hello"),
        ("caf\u00e9 \U0001f600", "caf\u00e9 \U0001f600"),
        ("lone \ud83d high", f"lone {REPLACEMENT} high"),
        ("lone \ude00 low", f"lone {REPLACEMENT} low"),
        ("pair \ud83d\ude00 joined", "pair \U0001f600 joined"),
        ("\ud83d", REPLACEMENT),
    ],
)
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


def test_a_lone_surrogate_from_the_wire_can_be_stored_and_sent() -> None:
    # What a messenger's JSON can carry: a valid escape for a code point UTF-8 cannot hold.
    text = json.loads('"see \\ud83d this"')
    with pytest.raises(UnicodeEncodeError):
        text.encode("utf-8")
    cleaned = clean_text(text)
    assert cleaned.encode("utf-8").decode("utf-8") == f"see {REPLACEMENT} this"
