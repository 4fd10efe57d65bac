"""Read an uploaded export (``.txt`` or ``.zip``) in memory and decode its chat text.

Nothing is ever written to disk. The file is untrusted: sizes are checked before and while
reading, zip member names are checked for path tricks, and every failure becomes an
:class:`ImportRejected` with a short ``reason`` code the adapter can translate.

Encoding policy: WhatsApp writes UTF-8 (sometimes with a BOM). UTF-16 is accepted when a BOM
says so (or the NUL pattern makes it unmistakable, as when an editor re-saved the file). Nothing
else is guessed: cp1252 would decode almost any byte string without error, so "no decode errors"
would prove nothing and a wrongly decoded history would be imported as mojibake. Such files are
rejected with reason ``encoding`` and the user is asked for the original export.
"""

from __future__ import annotations

import io
import lzma
import re
import zipfile
import zlib
from dataclasses import dataclass
from typing import Literal

from core.whatsapp.parser import looks_like_export

Reason = Literal["not_export", "empty", "too_large", "zip_bomb", "unsafe_zip", "encoding", "group_chat"]

MAX_EXPORT_BYTES = 50 * 1024 * 1024  # the uploaded file, and the decompressed chat text
MAX_ZIP_MEMBERS = 20_000  # an iOS export with media has one entry per file
MAX_COMPRESSION_RATIO = 100  # chat text compresses ~3-10x; a bomb compresses ~1000x
_RATIO_FLOOR = 1024 * 1024  # tiny members may compress absurdly well; only judge bigger ones
_CHUNK = 1024 * 1024

# Localised "WhatsApp Chat with " prefixes of the export file name (Android strings, iOS "- ").
_NAME_PREFIXES = (
    "WhatsApp Chat with ",
    "WhatsApp Chat - ",
    "Chat WhatsApp dengan ",
    "WhatsApp Chat mit ",
    "Chat de WhatsApp con ",
    "Чат WhatsApp с ",
    "Chat WhatsApp con ",
    "Conversa no WhatsApp com ",
    "Conversa do WhatsApp com ",
    "Discussion WhatsApp avec ",
    "WhatsApp-chat met ",
    "WhatsApp-Chat mit ",
    "WhatsApp Sohbeti: ",
)
# What a damaged or hostile member can raise while it is inflated (zipfile does not wrap these).
_INFLATE_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    NotImplementedError,
    EOFError,
    OSError,
    ValueError,
    RuntimeError,
)
_COPY_SUFFIX_RE = re.compile(r"\s*\(\d+\)$")  # "… (1).txt" after a second download


class ImportRejected(Exception):
    """The upload is not an importable 1:1 WhatsApp export; ``reason`` is a stable code."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason: Reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ExportText:
    """The decoded chat text of an export and the chat name taken from its file name."""

    text: str
    chat_name: str | None
    source_member: str | None = None  # the zip member that held the text, None for a .txt
    encoding: str = "utf-8"


def chat_name_from_filename(filename: str | None) -> str | None:
    """Return "ChatGPT" for "WhatsApp Chat with ChatGPT.txt" and the like, else None."""
    if not filename:
        return None
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    if dot and ext.lower() in ("txt", "zip"):
        base = stem
    base = _COPY_SUFFIX_RE.sub("", base).strip()
    low = base.casefold()
    for prefix in _NAME_PREFIXES:
        if low.startswith(prefix.casefold()):
            name = base[len(prefix) :].strip()
            return name or None
    return None


def _decode(data: bytes) -> tuple[str, str]:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise ImportRejected("encoding", "invalid UTF-16") from exc
    if data.startswith(b"\xef\xbb\xbf"):
        encoding = "utf-8-sig"
    else:
        encoding = "utf-8"
        # UTF-16 without BOM: ASCII-heavy text leaves a NUL in every other byte.
        sample = data[:4096]
        if len(sample) >= 4 and sample.count(0) * 3 >= len(sample):
            le = sample[1::2].count(0) > sample[0::2].count(0)
            try:
                return data.decode("utf-16-le" if le else "utf-16-be"), "utf-16"
            except UnicodeDecodeError as exc:
                raise ImportRejected("encoding", "invalid UTF-16") from exc
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ImportRejected("encoding", f"not UTF-8 at byte {exc.start}") from exc
    if "\x00" in text:
        raise ImportRejected("not_export", "binary data")
    return text, encoding


def _check_text(text: str) -> None:
    if not text.strip("\ufeff \t\r\n"):
        raise ImportRejected("empty")
    if not looks_like_export(text):
        raise ImportRejected("not_export", "no WhatsApp message header found")


def _unsafe_name(name: str) -> bool:
    norm = name.replace("\\", "/")
    return norm.startswith("/") or re.match(r"^[A-Za-z]:", norm) is not None or ".." in norm.split("/")


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    if info.file_size > limit:
        raise ImportRejected("too_large", f"{info.filename} declares {info.file_size} bytes")
    if info.file_size > _RATIO_FLOOR and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
        raise ImportRejected("zip_bomb", f"{info.filename} compression ratio too high")
    if info.flag_bits & 0x1:
        raise ImportRejected("unsafe_zip", f"{info.filename} is encrypted")
    out = bytearray()
    # Never trust the declared size: stop as soon as the real output passes the cap.
    with zf.open(info) as fh:
        while True:
            chunk = fh.read(_CHUNK)
            if not chunk:
                break
            out += chunk
            if len(out) > limit or len(out) > info.file_size:
                raise ImportRejected("zip_bomb", f"{info.filename} inflates past its declared size")
    return bytes(out)


def _pick_members(infos: list[zipfile.ZipInfo]) -> list[zipfile.ZipInfo]:
    texts = [
        i
        for i in infos
        if i.filename.lower().endswith(".txt")  # also excludes "" (is_dir() fails on it)
        and not i.filename.startswith("__MACOSX/")
        and "/." not in "/" + i.filename
    ]
    named = [i for i in texts if i.filename.rsplit("/", 1)[-1] == "_chat.txt"]
    named += [i for i in texts if chat_name_from_filename(i.filename) and i not in named]
    rest = sorted((i for i in texts if i not in named), key=lambda i: i.file_size, reverse=True)
    return (named + rest)[:5]


def _read_zip(filename: str, data: bytes, limit: int) -> ExportText:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.LargeZipFile, *_INFLATE_ERRORS) as exc:
        raise ImportRejected("not_export", "unreadable zip") from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            raise ImportRejected("unsafe_zip", f"{len(infos)} entries")
        for info in infos:
            if _unsafe_name(info.filename):
                raise ImportRejected("unsafe_zip", f"unsafe member name {info.filename!r}")
        candidates = _pick_members(infos)
        if not candidates:
            raise ImportRejected("not_export", "no .txt file in the zip")
        last: ImportRejected | None = None
        for info in candidates:
            try:
                raw = _read_member(zf, info, limit)
            except _INFLATE_ERRORS as exc:
                raise ImportRejected("unsafe_zip", f"{info.filename}: {exc}") from exc
            try:
                text, encoding = _decode(raw)
                _check_text(text)
            except ImportRejected as exc:
                last = exc
                continue
            name = chat_name_from_filename(filename) or chat_name_from_filename(info.filename)
            return ExportText(text, name, info.filename, encoding)
        assert last is not None
        raise last


def read_export(filename: str, data: bytes, *, max_bytes: int = MAX_EXPORT_BYTES) -> ExportText:
    """Decode an uploaded ``.txt`` or ``.zip`` export; raise :class:`ImportRejected` if unusable.

    The kind is told by content (a zip starts with ``PK``), not by the file name.
    """
    if not data:
        raise ImportRejected("empty")
    if len(data) > max_bytes:
        raise ImportRejected("too_large", f"{len(data)} bytes")
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return _read_zip(filename, data, max_bytes)
    text, encoding = _decode(data)
    _check_text(text)
    return ExportText(text, chat_name_from_filename(filename), None, encoding)
