"""Reading uploads: .txt and .zip exports, chat names, and every rejection reason.

Zips are built in memory at run time; nothing is extracted or written to disk.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile

import pytest

from core.whatsapp.archive import (
    MAX_EXPORT_BYTES,
    ImportRejected,
    chat_name_from_filename,
    read_export,
)

CHAT = "12/01/2024, 14:03 - Dana: Hi\n12/01/2024, 14:04 - ChatGPT: Hello! How can I help?\n"
IOS_CHAT = "[12/01/2024, 14:03:00] Dana: Hi\r\n[12/01/2024, 14:04:00] ChatGPT: Hello!\r\n"


def make_zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def set_declared_size(data: bytes, size: int) -> bytes:
    """Rewrite the uncompressed size in every local and central header of a zip."""
    out = bytearray(data)
    pos = 0
    while (pos := out.find(b"PK\x03\x04", pos)) != -1:
        struct.pack_into("<I", out, pos + 22, size)
        pos += 4
    pos = 0
    while (pos := out.find(b"PK\x01\x02", pos)) != -1:
        struct.pack_into("<I", out, pos + 24, size)
        pos += 4
    return bytes(out)


def reason(filename: str, data: bytes, **kwargs: int) -> str:
    with pytest.raises(ImportRejected) as info:
        read_export(filename, data, **kwargs)
    return info.value.reason


@pytest.mark.parametrize(
    ("filename", "name"),
    [
        ("WhatsApp Chat with ChatGPT.txt", "ChatGPT"),
        ("WhatsApp Chat with ChatGPT (1).txt", "ChatGPT"),
        ("WhatsApp Chat - ChatGPT.zip", "ChatGPT"),
        ("Chat WhatsApp dengan ChatGPT.txt", "ChatGPT"),
        ("WhatsApp Chat mit +1 (800) 242-8478.txt", "+1 (800) 242-8478"),
        ("Чат WhatsApp с ChatGPT.txt", "ChatGPT"),
        ("Chat de WhatsApp con ChatGPT.zip", "ChatGPT"),
        ("_chat.txt", None),
        ("notes.txt", None),
        ("", None),
        (None, None),
    ],
)
def test_chat_name_from_filename(filename: str | None, name: str | None) -> None:
    assert chat_name_from_filename(filename) == name


def test_plain_text_export() -> None:
    export = read_export("WhatsApp Chat with ChatGPT.txt", CHAT.encode())
    assert (export.text, export.chat_name, export.source_member, export.encoding) == (
        CHAT,
        "ChatGPT",
        None,
        "utf-8",
    )


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (b"\xef\xbb\xbf" + CHAT.encode(), "utf-8-sig"),
        (CHAT.encode("utf-16"), "utf-16"),  # with BOM
        (b"\xfe\xff" + CHAT.encode("utf-16-be"), "utf-16"),
        (CHAT.encode("utf-16-le"), "utf-16"),  # re-saved by an editor, no BOM
    ],
)
def test_unicode_encodings_are_accepted(data: bytes, encoding: str) -> None:
    export = read_export("WhatsApp Chat with ChatGPT.txt", data)
    assert export.text.lstrip("\ufeff") == CHAT
    assert export.encoding == encoding


def test_ios_zip_with_media() -> None:
    data = make_zip(
        {
            "_chat.txt": IOS_CHAT.encode(),
            "00000012-PHOTO-2024-01-12-14-06-10.jpg": os.urandom(2048),
            "__MACOSX/._chat.txt": b"\x00\x05\x16\x07",
        }
    )
    export = read_export("WhatsApp Chat - ChatGPT.zip", data)
    assert (export.text, export.chat_name, export.source_member) == (IOS_CHAT, "ChatGPT", "_chat.txt")


def test_android_zip_takes_the_name_from_the_member_when_the_upload_was_renamed() -> None:
    data = make_zip({"WhatsApp Chat with ChatGPT.txt": CHAT.encode(), "IMG-20240112-WA0001.jpg": b"\xff\xd8"})
    export = read_export("upload.zip", data)
    assert (export.chat_name, export.source_member) == ("ChatGPT", "WhatsApp Chat with ChatGPT.txt")


def test_zip_picks_the_text_that_looks_like_an_export() -> None:
    data = make_zip({"readme.txt": b"just notes\n" * 100, "chat.txt": CHAT.encode()})
    assert read_export("x.zip", data).source_member == "chat.txt"


# --- rejections -------------------------------------------------------------------------------


def test_empty_file() -> None:
    assert reason("WhatsApp Chat with ChatGPT.txt", b"") == "empty"
    assert reason("WhatsApp Chat with ChatGPT.txt", b"\xef\xbb\xbf \r\n\n") == "empty"
    assert reason("x.zip", make_zip({"_chat.txt": b""})) == "empty"


def test_random_bytes() -> None:
    rnd = bytes(range(256)) * 40 + os.urandom(4096)
    assert reason("WhatsApp Chat with ChatGPT.txt", rnd) in {"encoding", "not_export"}
    assert reason("WhatsApp Chat with ChatGPT.txt", b"\x00\x01\x02\x03" * 1000) in {"encoding", "not_export"}


def test_text_that_is_not_an_export() -> None:
    assert reason("notes.txt", b"Shopping list\n- milk\n- bread\n") == "not_export"


def test_zip_without_a_chat() -> None:
    assert reason("x.zip", make_zip({"photo.jpg": b"\xff\xd8\xff"})) == "not_export"
    assert reason("x.zip", b"PK\x03\x04 definitely not a zip") == "not_export"


def test_wrong_encoding_is_rejected_not_turned_into_mojibake() -> None:
    latin1 = "12/01/2024, 14:03 - José: Olá, está tudo bem?\n".encode("cp1252")
    assert reason("WhatsApp Chat with ChatGPT.txt", latin1) == "encoding"
    assert reason("x.zip", make_zip({"_chat.txt": latin1})) == "encoding"


def test_upload_over_the_limit() -> None:
    # The check is on the length before anything is decoded; a small limit stands in for 50 MB.
    assert MAX_EXPORT_BYTES == 50 * 1024 * 1024
    assert reason("WhatsApp Chat with ChatGPT.txt", CHAT.encode() * 10, max_bytes=100) == "too_large"


def test_zip_member_declaring_200_mb() -> None:
    # A tiny member whose headers claim 200 MB: rejected from the header, nothing is inflated.
    data = set_declared_size(make_zip({"_chat.txt": CHAT.encode()}), 200 * 1024 * 1024)
    assert reason("x.zip", data) == "too_large"


def test_zip_bomb_by_compression_ratio() -> None:
    # 40 MB of one byte compresses to ~40 kB: under the size cap, but a 1000:1 ratio.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("_chat.txt", "w") as fh:
        chunk = b"a" * (1024 * 1024)
        for _ in range(40):
            fh.write(chunk)
    assert reason("x.zip", buf.getvalue()) == "zip_bomb"


def test_zip_member_that_inflates_past_its_declared_size() -> None:
    # Headers claim 1 kB (ratio looks harmless); the real content is 2 MB. Reading stops early.
    body = (CHAT * 30_000).encode()[: 2 * 1024 * 1024]
    data = set_declared_size(make_zip({"_chat.txt": body}, zipfile.ZIP_STORED), 1000)
    assert reason("x.zip", data) in {"zip_bomb", "unsafe_zip"}


@pytest.mark.parametrize("name", ["../_chat.txt", "/etc/_chat.txt", "a/../../_chat.txt", "C:/x/_chat.txt"])
def test_zip_with_path_traversal_names(name: str) -> None:
    data = make_zip({"_chat.txt": CHAT.encode(), name: b"x"})
    assert reason("x.zip", data) == "unsafe_zip"


def test_zip_with_too_many_entries() -> None:
    from core.whatsapp import archive

    data = make_zip({f"f{i}.jpg": b"" for i in range(archive.MAX_ZIP_MEMBERS + 1)}, zipfile.ZIP_STORED)
    assert reason("x.zip", data) == "unsafe_zip"


def test_rejection_carries_a_code_and_a_detail() -> None:
    with pytest.raises(ImportRejected) as info:
        read_export("notes.txt", b"hello")
    assert info.value.reason == "not_export"
    assert "header" in info.value.detail


def test_export_header_may_follow_a_few_blank_or_odd_lines() -> None:
    text = "\r\n\r\n" + CHAT.replace("\n", "\r\n")
    assert read_export("WhatsApp Chat with ChatGPT.txt", text.encode()).text == text
    junk = "".join(f"line {i}\n" for i in range(30)) + CHAT
    assert reason("notes.txt", junk.encode()) == "not_export"
