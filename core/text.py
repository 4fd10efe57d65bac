"""Cleaning a person's text at the edge, before it is stored or sent to the model.

Messengers hand over text that Python can hold but not encode: a lone UTF-16 surrogate
(U+D800–U+DFFF) survives JSON decoding (``json.loads('"\\ud83d"')``) yet makes every later
``str.encode("utf-8")`` fail, so the store, the model request and every retry would break on it.
Such code points are replaced with U+FFFD (what a UTF-8 decoder shows for broken bytes), and
control characters are dropped, keeping newlines and tabs.
"""

from __future__ import annotations

import unicodedata

REPLACEMENT = "\ufffd"


def clean_text(text: str) -> str:
    """Normalise line ends, drop control characters (keeping newlines and tabs), replace lone surrogates."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # A properly paired surrogate (possible only in text built by hand) becomes the character it
    # names; what is left unpaired cannot be encoded and becomes U+FFFD.
    text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return "".join(c for c in text if c in "\n\t" or unicodedata.category(c) != "Cc").strip()
