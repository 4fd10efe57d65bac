"""Parse the text of a WhatsApp "Export chat" file into messages and system lines.

Pure and standard-library only. One pass over the lines collects header candidates; the date
order (day/month/year, month/day/year or year/month/day) is then decided from the whole file,
never line by line, and the messages are built in a second pass over the headers.

Timestamps are naive ``datetime`` values: the phone's local wall-clock time exactly as written in
the file. WhatsApp records no time zone, so attaching one here would be a guess.

Formats are described in ``shared/research/whatsapp-export.md``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from core.whatsapp.dateorder import month_first_votes

DateOrder = Literal["dmy", "mdy", "ymd"]
Platform = Literal["android", "ios"]
MediaKind = Literal["image", "video", "audio", "voice", "sticker", "gif", "document", "contact", "view_once", "media"]
SystemKind = Literal["encryption", "security_code", "business", "missed_call", "other"]

# Directional and other invisible marks WhatsApp sprinkles over headers, names and placeholders.
# ZWJ/ZWNJ (U+200D/U+200C) are kept: they are part of emoji and of names.
INVISIBLE = "\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff\u061c"
_SPACES = "\u00a0\u202f\u2009\u2007\u2002\u2003"
_PROBE_TABLE = str.maketrans(
    {**{ch: None for ch in INVISIBLE}, **{ch: " " for ch in _SPACES}, "\u060c": ","}  # Arabic comma
)
# Longest header seen ("05/01/2021, 3:07 in the afternoon - ", Arabic with marks) is well below this;
# only this prefix of a line is normalised, so long message lines cost nothing extra.
_PROBE_LEN = 80
_TAIL = 80  # the longest edited marker with its leading space and mark fits in this

# Words used as AM/PM, normalised by _ampm_key (casefolded, dots and spaces removed).
_AM = frozenset({"am", "inthemorning", "ص", "上午", "午前", "오전", "πμ", "vorm", "sa", "fm", "de", "pg"})
_PM = frozenset(
    {
        "pm",
        "intheafternoon",
        "intheevening",
        "atnight",
        "م",
        "下午",
        "午後",
        "오후",
        "μμ",
        "nachm",
        "ch",
        "em",
        "du",
        "ptg",
        "noon",
    }
)

_HEADER_RE = re.compile(
    r"""^
    [\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff\u061c]*   # marks and stray BOMs before a header
    (?P<br>\[)?
    (?P<d1>\d{1,4})(?P<sep>[./-])\s?(?P<d2>\d{1,2})(?P=sep)\s?(?P<d3>\d{1,4})\.?
    (?:\s?BE)?                                   # Thai Buddhist era on iOS
    (?:[,،]\s?|\s)                              # ", ", " ", Arabic comma
    (?:(?:klo|um|à|at|lúc|a\slas|kl\.)\s)?       # locale words between date and time
    (?:(?P<pre>오전|오후|上午|下午|午前|午後)\s?)?   # markers written before the time
    (?P<h>\d{1,2})[:.](?P<mi>\d{2})(?:[:.](?P<s>\d{2}))?
    (?:\s?(?P<ampm>[^\W\d_]+\.?(?:\s?[^\W\d_]+\.?){0,3}))?
    (?P<end>(?(br)\]\s|(?(ampm)(?:\s[-–]\s|:\s)|\s[-–]\s)))  # "] ", " - ", old iOS "PM: "
    (?P<rest>.*)$""",
    re.VERBOSE,
)

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
_IOS_FILE_KIND_RE = re.compile(r"^\d{8}-(PHOTO|VIDEO|AUDIO|STICKER|GIF)-")
_IOS_FILE_KINDS: dict[str, MediaKind] = {
    "PHOTO": "image",
    "VIDEO": "video",
    "AUDIO": "audio",
    "STICKER": "sticker",
    "GIF": "gif",
}
# Lines holding any of these need the slow, normalised probe; most lines hold none.
_SPECIAL_RE = re.compile("[" + INVISIBLE + _SPACES + "\u060c]")
_INVISIBLE_RE = re.compile("[" + INVISIBLE + "]")
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


@dataclass(frozen=True)
class ParsedChat:
    """The result of :func:`parse_export`.

    ``date_order_ambiguous`` is True when no date in the file had a day above 12, so the order
    came from the sequence of dates or the default; a caller should then show a preview.
    """

    messages: tuple[Message, ...]
    system: tuple[SystemLine, ...]
    senders: tuple[str, ...]  # distinct message senders, in order of first appearance
    date_order: DateOrder
    date_order_ambiguous: bool
    platform: Platform | None  # None when the text held no message header


@dataclass(slots=True)
class _Block:
    """A header line and the continuation lines after it, before dates are resolved."""

    fields: tuple[str, ...]  # d1, d2, d3, hour, minute, second, am/pm token (see _FIELDS)
    style: str  # "bracket" (iOS), "dash" (Android) or "colon" (iOS before 2017)
    raw: str
    raw_rest: str
    line: int
    lines: list[str]


_FIELDS = ("d1", "d2", "d3", "h", "mi", "s", "ampm", "pre", "br", "end")


def _ampm_key(token: str) -> str:
    return "".join(token.casefold().replace(".", "").split())


def _clean_name(name: str) -> str:
    name = name.translate(_PROBE_TABLE).strip()
    if name.startswith("~"):  # iOS marks non-contacts in groups with "~ "
        name = name[1:].strip()
    return name


def _raw_offset(raw: str, probe_pos: int) -> int:
    """Map a position in the probe (marks deleted) back to the raw line."""
    kept = 0
    for i, ch in enumerate(raw):
        if kept == probe_pos:
            return i
        if ch not in INVISIBLE:
            kept += 1
    return len(raw)


def _match(line: str) -> tuple[re.Match[str], str] | None:
    """The header match of a line that may be a header, and the raw text after the header."""
    m = _HEADER_RE.match(line)
    if m is not None:
        return m, line[m.start("rest") :]
    if _SPECIAL_RE.search(line, 0, _PROBE_LEN) is None:
        return None
    # Marks inside the date (Arabic RLM) or an Arabic comma: match a normalised copy of the prefix.
    m = _HEADER_RE.match(line[:_PROBE_LEN].translate(_PROBE_TABLE))
    if m is None:
        return None
    return m, line[_raw_offset(line, m.start("rest")) :]


def match_header(line: str) -> re.Match[str] | None:
    """Return the header match of one export line, or None for a continuation line."""
    first = line[:1]
    if not first or not (first == "[" or first.isdigit() or first in INVISIBLE):
        return None
    found = _match(line)
    return found[0] if found else None


def looks_like_export(text: str, probe_lines: int = 20) -> bool:
    """True when one of the first non-empty lines is a WhatsApp message header."""
    seen = 0
    start = 0
    # Walk line by line with find(): splitting a large text just to look at its head would copy it.
    while seen < probe_lines and start <= len(text):
        end = text.find("\n", start)
        if end == -1:
            end = len(text)
        line = text[start:end].rstrip("\r")
        start = end + 1
        if not line.strip():
            continue
        if match_header(line):
            return True
        seen += 1
    return False


def _style(br: str | None, end: str) -> str:
    if br:
        return "bracket"
    return "dash" if end.strip() in ("-", "–") else "colon"


def _decide_order(
    blocks: list[_Block], hint: DateOrder | None, default: DateOrder | None, not_after: datetime | None = None
) -> tuple[DateOrder, bool]:
    if hint is not None:
        return hint, False
    if not blocks:
        return default or "dmy", True
    four_first = sum(1 for b in blocks if len(b.fields[0]) >= 3)
    if four_first * 2 > len(blocks):
        return "ymd", False
    first_big = sum(1 for b in blocks if int(b.fields[0]) > 12)
    second_big = sum(1 for b in blocks if int(b.fields[1]) > 12)
    if first_big and not second_big:
        return "dmy", False
    if second_big and not first_big:
        return "mdy", False
    if first_big and second_big:  # stray spoofed lines: trust the majority, but say so
        return ("dmy" if first_big >= second_big else "mdy"), True
    # No day above 12 anywhere: prefer the order under which dates run forward more often,
    # then every other signal the file has (see core.whatsapp.dateorder).
    back = {"dmy": 0, "mdy": 0}
    prev: dict[str, tuple[int, int, int]] = {}
    for b in blocks:
        a, c, y = int(b.fields[0]), int(b.fields[1]), int(b.fields[2])
        for order, key in (("dmy", (y, c, a)), ("mdy", (y, a, c))):
            if order in prev and key < prev[order]:
                back[order] += 1
            prev[order] = key
    votes = 0 if back["dmy"] == back["mdy"] else (6 if back["dmy"] > back["mdy"] else -6)
    sample = [b.raw_rest for b in blocks[:300]]
    votes += month_first_votes(
        [(int(b.fields[0]), int(b.fields[1]), _year(b.fields[2])) for b in blocks],
        [b.fields[6] for b in blocks], sample, "\n".join(sample), not_after,
    )
    votes += {"mdy": 3, "dmy": -3}.get(default or "", 0)
    return ("mdy" if votes > 0 else "dmy" if votes < 0 else default or "dmy"), True


def _year(text: str) -> int:
    y = int(text)
    if len(text) <= 2:
        return 2000 + y
    if y >= 2400:  # Thai Buddhist era
        return y - 543
    return y


def _date(d1: str, d2: str, d3: str, order: DateOrder) -> tuple[int, int, int]:
    if order == "ymd":
        return _year(d1), int(d2), int(d3)
    if order == "dmy":
        return _year(d3), int(d2), int(d1)
    return _year(d3), int(d1), int(d2)


class _Clock:
    """Turns header fields into datetimes, caching the parts that repeat across a chat."""

    def __init__(self, order: DateOrder) -> None:
        self.order: DateOrder = order
        self.dates: dict[tuple[str, str, str], tuple[int, int, int]] = {}
        self.shifts: dict[str, str] = {}

    def timestamp(self, fields: tuple[str, ...]) -> datetime:
        d1, d2, d3, h, mi, sec, token = fields
        key = (d1, d2, d3)
        ymd = self.dates.get(key)
        if ymd is None:
            ymd = self.dates[key] = _date(d1, d2, d3, self.order)
        hour = int(h)
        if token:
            shift = self.shifts.get(token)
            if shift is None:
                k = _ampm_key(token)
                shift = self.shifts[token] = "pm" if k in _PM else "am" if k in _AM else ""
            # Real files hold "23:59 PM" and "00:04 AM": only shift hours that are 12-hour values.
            if shift == "pm" and hour < 12:
                hour += 12
            elif shift == "am" and hour == 12:
                hour = 0
        return datetime(ymd[0], ymd[1], ymd[2], hour, int(mi), int(sec) if sec else 0)


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


def _build(block: _Block, ts: datetime, platform: Platform, names: dict[str, str]) -> Message | SystemLine | None:
    rest = block.raw_rest
    while block.lines and not block.lines[-1].strip():  # WhatsApp trims messages; this is file layout
        block.lines.pop()
    idx = rest.find(": ")
    if idx == -1:
        if rest.endswith(":") and len(rest) > 1 and not block.lines:
            bare = _clean_name(rest[:-1])
            if bare:  # "Carol:" with nothing after it (view-once or empty body)
                return Message(ts, bare, "", line=block.line)
        text = "\n".join([_strip_lead(rest), *block.lines]).rstrip()
        return SystemLine(ts, text, _system_kind(text), None, block.line)
    raw_name = rest[:idx]
    sender = names.get(raw_name)
    if sender is None:
        sender = names[raw_name] = _clean_name(raw_name)
    if not sender:
        text = _strip_lead(rest)
        return SystemLine(ts, text, _system_kind(text), None, block.line)
    raw_first = rest[idx + 2 :]
    marked = raw_first[:1] in ("\u200e", "\u200f")
    first = _strip_lead(raw_first)
    edited = False
    # Cheap endswith() guards keep the regexes off the long lines of ordinary answers.
    # The marker ends the line; searching only its tail keeps "\s*" from going quadratic on a
    # hostile line of spaces.
    em = _EDITED_RE.search(first, max(0, len(first) - _TAIL)) if first.endswith(">") else None
    if em is not None:
        first = first[: em.start()]
        edited = True
    elif block.lines and block.lines[-1].endswith(">"):
        last = block.lines[-1]
        em2 = _EDITED_RE.search(last, max(0, len(last) - _TAIL))
        if em2:
            block.lines[-1] = last[: em2.start()]
            edited = True
    caption = "\n".join(block.lines).rstrip()
    probe = (first.translate(_PROBE_TABLE) if _SPECIAL_RE.search(first) else first).strip()
    plain = probe.rstrip(".").casefold() if len(probe) < 64 else ""

    if not block.lines:
        if plain in _DELETED_OTHER:
            return Message(ts, sender, "", deleted=True, line=block.line)
        if plain in _DELETED_SELF:
            return Message(ts, sender, "", deleted=True, deleted_by_exporter=True, line=block.line)
        if plain in _MISSED_CALL:
            return SystemLine(ts, probe, "missed_call", sender, block.line)
        if probe == "null" and platform == "android":  # Android view-once media
            return Message(ts, sender, "", media="view_once", line=block.line)

    if probe.startswith("<") and _MEDIA_OMITTED_RE.match(probe):
        return Message(ts, sender, caption, media="media", edited=edited, line=block.line)
    fm = _FILE_ATTACHED_RE.match(probe) if probe.endswith(")") else None
    if fm:
        name = fm.group("file").strip()
        return Message(
            ts,
            sender,
            caption,
            media=_android_file_kind(name),
            attachment=name,
            edited=edited,
            line=block.line,
        )
    am = _IOS_ATTACHED_RE.search(probe) if probe.endswith(">") else None
    if am:
        name = am.group("file").strip()
        return Message(ts, sender, caption, media=_ios_file_kind(name), attachment=name, edited=edited, line=block.line)
    # iOS placeholders always carry a direction mark; requiring one keeps a typed "video omitted" text.
    if "\u200e" in raw_first or "\u200f" in raw_first:
        om = _IOS_OMITTED_RE.search(probe, max(0, len(probe) - _TAIL))
        if om:
            kind = _media_kind_from_words(om.group(0))
            # "Resume.pdf • 2 pages document omitted": the text before the marker names the file.
            name = probe[: om.start()].split("•")[0].strip() or None
            return Message(ts, sender, caption, media=kind, attachment=name, edited=edited, line=block.line)
    if marked and platform == "ios" and not block.lines and not _LOCATION_RE.match(probe):
        # iOS writes notices as a mark-prefixed message from the other party.
        return SystemLine(ts, probe, _system_kind(probe), sender, block.line)
    text = "\n".join([first, *block.lines]).rstrip()
    return Message(ts, sender, text, edited=edited, line=block.line)


def parse_export(
    text: str, *, date_order: DateOrder | None = None, default_order: DateOrder | None = None,
    not_after: datetime | None = None,
) -> ParsedChat:
    """Parse the decoded text of an export.

    ``date_order`` forces the order (for example after the user confirmed a preview);
    ``default_order`` (the person's locale, when known) weighs as much as the file's strongest
    signals and decides a tie (day first when not given); ``not_after`` is the
    file's own time (no message can be later), which helps decide an ambiguous order.
    """
    if "\r" in text and "\n" not in text:
        text = text.replace("\r", "\n")  # bare CR line ends; CRLF is handled per line below
    blocks: list[_Block] = []
    current: list[str] | None = None
    # Splitting on "\n" only: str.splitlines() would also split inside messages at U+2028, U+0085…
    # CRLF is trimmed per line rather than by replacing in the whole text, which can be a 4-byte
    # per character string of tens of MB once a single emoji is in it.
    for number, line in enumerate(text.split("\n"), 1):
        if line.endswith("\r"):
            line = line[:-1]
        first = line[:1]
        found = _match(line) if first and (first == "[" or first.isdigit() or first in INVISIBLE) else None
        if found is None:
            if current is not None:
                current.append(line)
            continue
        m, raw_rest = found
        d1, d2, d3, h, mi, sec, ampm, pre, br, end = m.group(*_FIELDS)
        current = []
        fields = (d1, d2, d3, h, mi, sec or "", ampm or pre or "")
        blocks.append(_Block(fields, _style(br, end), line, raw_rest, number, current))

    style_counts = Counter(b.style for b in blocks)
    style = style_counts.most_common(1)[0][0] if blocks else None
    platform: Platform | None = None if style is None else ("android" if style == "dash" else "ios")
    order, ambiguous = _decide_order([b for b in blocks if b.style == style], date_order, default_order, not_after)
    clock = _Clock(order)

    messages: list[Message] = []
    system: list[SystemLine] = []
    seen: dict[str, None] = {}
    names: dict[str, str] = {}
    resolved: list[tuple[_Block, datetime]] = []
    for b in blocks:
        ts: datetime | None = None
        if b.style == style:
            try:
                ts = clock.timestamp(b.fields)
            except ValueError:
                ts = None
        if ts is None:
            # Not a real header (a continuation line that looks like one): keep it as text.
            if resolved:
                prev = resolved[-1][0]
                prev.lines.append(b.raw)
                prev.lines.extend(b.lines)
            continue
        resolved.append((b, ts))
    for b, ts in resolved:
        item = _build(b, ts, platform or "android", names)
        if isinstance(item, Message):
            messages.append(item)
            seen.setdefault(item.sender, None)
        elif item is not None:
            system.append(item)
    return ParsedChat(tuple(messages), tuple(system), tuple(seen), order, ambiguous, platform)
