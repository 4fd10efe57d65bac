"""Building one message or notice from a header block: sender, text, media placeholders, markers.

The second pass of :mod:`core.whatsapp.parser`. WhatsApp writes media it left out, deleted
messages, edits and its own notices as words in the exporting phone's language; the tables
below hold those words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from core.whatsapp.headers import INVISIBLE, PROBE_TABLE, SPECIAL_RE, Block, Platform

MediaKind = Literal["image", "video", "audio", "voice", "sticker", "gif", "document", "contact", "view_once", "media"]
SystemKind = Literal["encryption", "security_code", "business", "missed_call", "other"]

_TAIL = 80  # the longest edited marker with its leading space and mark fits in this

_EDITED_RE = re.compile(
    r"\s*\u200e?<(?:This message was edited|Pesan ini diedit|Este mensaje fue editado|"
    r"Diese Nachricht wurde bearbeitet|Ce message a été modifié|Questo messaggio è stato modificato|"
    r"Esta mensagem foi editada|Dit bericht is bewerkt|Сообщение изменено)>$"
)
_DELETED_OTHER = frozenset(
    {
        "this message was deleted",
        "pesan ini telah dihapus",
        "pesan ini dihapus",
        "dit bericht is verwijderd",
        "diese nachricht wurde gelöscht",
        "se eliminó este mensaje",
        "este mensaje fue eliminado",
        "mensagem apagada",
        "essa mensagem foi apagada",
        "ce message a été supprimé",
        "questo messaggio è stato eliminato",
        "это сообщение удалено",
        "تم حذف هذه الرسالة",
    }
)
_DELETED_SELF = frozenset(
    {
        "you deleted this message",
        "anda telah menghapus pesan ini",
        "anda menghapus pesan ini",
        "u hebt dit bericht verwijderd",
        "du hast diese nachricht gelöscht",
        "eliminaste este mensaje",
        "você apagou esta mensagem",
        "vous avez supprimé ce message",
        "hai eliminato questo messaggio",
        "вы удалили это сообщение",
        "أنت حذفت هذه الرسالة",
    }
)
_MISSED_CALL = frozenset(
    {
        "missed voice call",
        "missed video call",
        "panggilan suara tak terjawab",
        "panggilan video tak terjawab",
        "gemiste spraakoproep",
        "gemiste video-oproep",
        "verpasster sprachanruf",
        "verpasster videoanruf",
    }
)
_MEDIA_OMITTED_RE = re.compile(
    r"^<(?:Media omitted|Media tidak disertakan|Medien ausgeschlossen|Medien weggelassen|"
    r"Media weggelaten|Без медиафайлов|Média vynechány|Multimedia omitido|Archivo omitido|"
    r"Mídia oculta|Arquivo de mídia oculto|Média omis|Media omessi)>$"
)
_FILE_ATTACHED_RE = re.compile(
    r"^(?P<file>.+?) \((?:file attached|file terlampir|Datei angehängt|bestand bijgevoegd|"
    r"archivo adjunto|arquivo anexado|fichier joint|file allegato|файл прикреплен)\)$"
)
_IOS_ATTACHED_RE = re.compile(
    r"<(?:attached|terlampir|Anhang|anexo|adjunto|pièce jointe|allegato|вложение): (?P<file>[^>]+)>$"
)
# iOS "without media": "‎image omitted", "Some.pdf ‎• 2 pages ‎document omitted", Indonesian, …
_IOS_OMITTED_RE = re.compile(
    r"(?:^|\s)(?:(?P<en>image|video|audio|sticker|GIF|Contact card|document) omitted"
    r"|(?P<id>gambar|video|audio|stiker|GIF|Kartu kontak|dokumen) tidak disertakan"
    r"|(?P<de>Bild|Video|Audio|Sticker|GIF|Kontaktkarte|Dokument) weggelassen"
    r"|(?P<es>imagen|video|audio|sticker|GIF|tarjeta de contacto|documento) omitid[oa]"
    r"|(?P<ar>لم يتم إدراج .+|تم حذف الملصقات))$",
    re.IGNORECASE,
)
_KIND_WORDS: tuple[tuple[MediaKind, tuple[str, ...]], ...] = (
    ("image", ("image", "gambar", "bild", "imagen", "الصورة")),
    ("gif", ("gif",)),
    ("video", ("video", "الفيديو")),
    ("audio", ("audio", "الصوتية")),
    ("sticker", ("sticker", "stiker", "الملصقات")),
    ("contact", ("contact", "kontak", "kontaktkarte", "contacto", "جهة اتصال")),
    ("document", ("document", "dokumen", "dokument", "documento", "المستند")),
)
_ANDROID_FILE_KINDS: dict[str, MediaKind] = {
    "IMG": "image",
    "VID": "video",
    "PTT": "voice",
    "AUD": "audio",
    "STK": "sticker",
}
_IOS_FILE_KINDS: dict[str, MediaKind] = {
    "PHOTO": "image",
    "VIDEO": "video",
    "AUDIO": "audio",
    "STICKER": "sticker",
    "GIF": "gif",
}
_IOS_FILE_KIND_RE = re.compile(rf"^\d{{8}}-({'|'.join(_IOS_FILE_KINDS)})-")
_LOCATION_RE = re.compile(r"^[^\s:]{1,20}\s?: https?://")

_SYSTEM_KINDS: tuple[tuple[SystemKind, re.Pattern[str]], ...] = (
    (
        "encryption",
        re.compile(
            r"end-to-end|end‑to‑end|terenkripsi|versleuteld|verschlüsselt|cifrad|chiffré|crittograf"
            r"|criptograf|шифр|مشفرة|暗号化|加密|암호화",
            re.IGNORECASE,
        ),
    ),
    (
        "security_code",
        re.compile(
            r"security code|kode keamanan|sicherheitsnummer|beveiligingscode|código de seguridad",
            re.IGNORECASE,
        ),
    ),
    ("business", re.compile(r"business|bisnis|\bMeta\b|unternehmen|empresa", re.IGNORECASE)),
)


@dataclass(frozen=True, slots=True)
class Message:
    """One message a person (or the assistant) sent, in file order.

    ``text`` is the typed text, or the caption for media; it keeps newlines and is "" for a
    deleted message or media without caption. ``media`` names the kind of an omitted or attached
    file ("image", "video", "audio", "voice", "sticker", "gif", "document", "contact",
    "view_once" or "media" when unknown), ``attachment`` its file name when the export gives one.
    """

    timestamp: datetime
    sender: str
    text: str
    media: MediaKind | None = None
    attachment: str | None = None
    deleted: bool = False
    deleted_by_exporter: bool = False  # "You deleted this message": the sender is the exporter
    edited: bool = False
    line: int = 0  # 1-based line number of the header in the export


@dataclass(frozen=True, slots=True)
class SystemLine:
    """A notice WhatsApp wrote itself (encryption, security code, group events, missed calls).

    On iOS and for missed calls the notice is attributed to a ``sender``; otherwise it is None.
    ``kind`` is "encryption", "security_code", "business", "missed_call" or "other".
    """

    timestamp: datetime
    text: str
    kind: SystemKind
    sender: str | None = None
    line: int = 0


def _clean_name(name: str) -> str:
    name = name.translate(PROBE_TABLE).strip()
    if name.startswith("~"):  # iOS marks non-contacts in groups with "~ "
        name = name[1:].strip()
    return name


def _media_kind_from_words(words: str) -> MediaKind:
    low = words.casefold()
    for kind, keys in _KIND_WORDS:
        if any(k in low for k in keys):
            return kind
    return "media"


def _android_file_kind(name: str) -> MediaKind:
    if name.lower().endswith(".vcf"):
        return "contact"
    return _ANDROID_FILE_KINDS.get(name[:3], "document")


def _ios_file_kind(name: str) -> MediaKind:
    if name.lower().endswith(".vcf"):
        return "contact"
    km = _IOS_FILE_KIND_RE.match(name)
    return _IOS_FILE_KINDS[km.group(1)] if km else "document"


def _strip_lead(text: str) -> str:
    return text.lstrip(INVISIBLE) if text and text[0] in INVISIBLE else text


def _system_kind(text: str) -> SystemKind:
    for kind, rx in _SYSTEM_KINDS:
        if rx.search(text):
            return kind
    return "other"


def _notice(ts: datetime, text: str, block: Block, sender: str | None = None) -> SystemLine:
    return SystemLine(ts, text, _system_kind(text), sender, block.line)


def _sender(raw_name: str, names: dict[str, str]) -> str:
    """The cleaned sender name, cached per raw spelling (a chat repeats a few names many times)."""
    sender = names.get(raw_name)
    if sender is None:
        sender = names[raw_name] = _clean_name(raw_name)
    return sender


def _without_colon(block: Block, ts: datetime) -> Message | SystemLine:
    """A header without "name: ": a notice, or "Carol:" with nothing after it."""
    rest = block.raw_rest
    if rest.endswith(":") and len(rest) > 1 and not block.lines:
        bare = _clean_name(rest[:-1])
        if bare:  # "Carol:" with nothing after it (view-once or empty body)
            return Message(ts, bare, "", line=block.line)
    return _notice(ts, "\n".join([_strip_lead(rest), *block.lines]).rstrip(), block)


def _edited_marker(text: str) -> re.Match[str] | None:
    # The marker ends the line; searching only its tail keeps "\s*" from going quadratic on a
    # hostile line of spaces. The cheap endswith() keeps the regex off ordinary long lines.
    return _EDITED_RE.search(text, max(0, len(text) - _TAIL)) if text.endswith(">") else None


def _unedited(first: str, lines: list[str]) -> tuple[str, bool]:
    """The first line without the "edited" marker, and whether there was one (on it or the last line).

    A marker on the last continuation line is cut from ``lines`` in place.
    """
    em = _edited_marker(first)
    if em is not None:
        return first[: em.start()], True
    em = _edited_marker(lines[-1]) if lines else None
    if em is not None:
        lines[-1] = lines[-1][: em.start()]
        return first, True
    return first, False


def _one_line_item(probe: str, ts: datetime, sender: str, platform: Platform, line: int) -> Message | SystemLine | None:
    """A deleted message, a missed call or Android view-once media, written as the whole body."""
    plain = probe.rstrip(".").casefold() if len(probe) < 64 else ""
    if plain in _DELETED_OTHER:
        return Message(ts, sender, "", deleted=True, line=line)
    if plain in _DELETED_SELF:
        return Message(ts, sender, "", deleted=True, deleted_by_exporter=True, line=line)
    if plain in _MISSED_CALL:
        return SystemLine(ts, probe, "missed_call", sender, line)
    if probe == "null" and platform == "android":  # Android view-once media
        return Message(ts, sender, "", media="view_once", line=line)
    return None


def _media(probe: str, raw_first: str) -> tuple[MediaKind, str | None] | None:
    """The kind and file name of a media placeholder, or None for ordinary text."""
    if probe.startswith("<") and _MEDIA_OMITTED_RE.match(probe):
        return "media", None
    fm = _FILE_ATTACHED_RE.match(probe) if probe.endswith(")") else None
    if fm:
        name = fm.group("file").strip()
        return _android_file_kind(name), name
    am = _IOS_ATTACHED_RE.search(probe) if probe.endswith(">") else None
    if am:
        name = am.group("file").strip()
        return _ios_file_kind(name), name
    # iOS placeholders always carry a direction mark; requiring one keeps a typed "video omitted" text.
    if "\u200e" in raw_first or "\u200f" in raw_first:
        om = _IOS_OMITTED_RE.search(probe, max(0, len(probe) - _TAIL))
        if om:
            # "Resume.pdf • 2 pages document omitted": the text before the marker names the file.
            return _media_kind_from_words(om.group(0)), probe[: om.start()].split("•")[0].strip() or None
    return None


def _from_sender(block: Block, ts: datetime, platform: Platform, sender: str, raw_first: str) -> Message | SystemLine:
    """The body after "name: ": a placeholder, an iOS notice or the typed text."""
    first, edited = _unedited(_strip_lead(raw_first), block.lines)
    probe = (first.translate(PROBE_TABLE) if SPECIAL_RE.search(first) else first).strip()
    item = None if block.lines else _one_line_item(probe, ts, sender, platform, block.line)
    if item is not None:
        return item
    media = _media(probe, raw_first)
    if media is not None:
        caption = "\n".join(block.lines).rstrip()
        return Message(ts, sender, caption, media=media[0], attachment=media[1], edited=edited, line=block.line)
    marked = raw_first[:1] in ("\u200e", "\u200f")
    if marked and platform == "ios" and not block.lines and not _LOCATION_RE.match(probe):
        # iOS writes notices as a mark-prefixed message from the other party.
        return _notice(ts, probe, block, sender)
    return Message(ts, sender, "\n".join([first, *block.lines]).rstrip(), edited=edited, line=block.line)


def build(block: Block, ts: datetime, platform: Platform, names: dict[str, str]) -> Message | SystemLine:
    """The message or notice a header block holds; ``names`` caches cleaned sender names."""
    while block.lines and not block.lines[-1].strip():  # WhatsApp trims messages; this is file layout
        block.lines.pop()
    rest = block.raw_rest
    idx = rest.find(": ")
    if idx == -1:
        return _without_colon(block, ts)
    sender = _sender(rest[:idx], names)
    if not sender:
        return _notice(ts, _strip_lead(rest), block)
    return _from_sender(block, ts, platform, sender, rest[idx + 2 :])
