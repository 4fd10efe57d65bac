"""Untrusted input never crashes the importer: it parses, or it is rejected with a reason."""

from __future__ import annotations

import io
import zipfile

from hypothesis import given, settings
from hypothesis import strategies as st

from core.whatsapp.archive import ImportRejected, read_export
from core.whatsapp.parser import parse_export

HEADERISH = st.sampled_from(
    [
        "12/01/2024, 14:03 - ",
        "[1/12/24, 2:03:15\u202fPM] ",
        "\u200e[",
        "99/99/99 99.99 - ",
        "2024-13-45, 25:61 - ",
        "[١٨\u200f/٣\u200f/٢٠٢٢، ٢:٥٦:٠٠\u00a0م] ",
        "0/0/0000 0:00 - ",
        ": ",
        "\r\n",
        "\n",
        "Dana: ",
    ]
)
REASONS = {"not_export", "empty", "too_large", "zip_bomb", "unsafe_zip", "encoding"}
messy_text = st.lists(st.one_of(HEADERISH, st.text(max_size=30)), max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(messy_text)
def test_parse_export_never_raises(text: str) -> None:
    chat = parse_export(text)
    assert all(m.sender for m in chat.messages)
    assert set(chat.senders) == {m.sender for m in chat.messages}


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=2000), messy_text.map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_read_export_returns_text_or_rejects(data: bytes) -> None:
    try:
        export = read_export("WhatsApp Chat with ChatGPT.txt", data)
    except ImportRejected as exc:
        assert exc.reason in {"not_export", "empty", "encoding"}
    else:
        parse_export(export.text)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=0, max_value=399))
def test_damaged_zip_is_rejected_not_crashed(noise: bytes, at: int) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("_chat.txt", "12/01/2024, 14:03 - Dana: hi\n" * 20)
    data = bytearray(buf.getvalue())
    at = min(at, len(data) - 1)
    data[at : at + len(noise)] = noise
    try:
        export = read_export("x.zip", bytes(data))
    except ImportRejected as exc:
        assert exc.reason in REASONS
    else:
        assert export.source_member
