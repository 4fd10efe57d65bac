"""Documents: PDF, Word (.docx), Markdown, CSV and source files become text in the conversation.

Text is extracted in a worker thread with every size bounded before it is spent: a PDF's page
count is read before any page (5,000 pages get a sentence, not 5,000 extractions), extraction
stops once the conversation's message budget is full, and a DOCX's ZIP directory is checked for
a decompression bomb before python-docx opens it. What does not fit is cut with a note the model
reads and a sentence the person reads, naming how much was kept. Encrypted and image-only PDFs,
broken files and unknown types each get their own sentence; nothing is stored for them.
(A ``.txt`` file goes to the WhatsApp importer first, as it always did.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import os
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from core.media.feature import MediaFeature
from core.media.photos import keep_unanswered
from core.registry import Registry
from core.request import Request
from core.services import Services
from core.types import Attachment, ReplyEvent, StreamStart

if TYPE_CHECKING:
    from pypdf import PdfReader

log = logging.getLogger(__name__)

MAX_PAGES = 2_000
"""PDFs with more pages are refused before any text is extracted."""
MAX_UNPACKED = 100 * 1024 * 1024
"""A DOCX that unpacks to more than this (or compresses over 100:1) is a ZIP bomb."""
MAX_RATIO = 100
READERS = 1
"""Documents read at once (a worker thread each); more wait their turn, bounding memory and CPU.
One: the readers are pure Python, so a second thread reads no faster and only fights the event
loop for the GIL (``bench.media_bench --phases readers``, 20 PDFs of 20 pages: the same 0.3 s
and CPU, the loop's ticks late by 9-12 ms median with 2 threads, 5 ms with 1)."""
IN_MEMORY = 4 * 1024 * 1024
"""A spooled document up to this size is read into memory before extraction."""
NOTE_ROOM = 400  # characters kept free for the framing and the cut note
TEXT_TYPES = (
    ".md", ".markdown", ".csv", ".tsv", ".json", ".xml", ".yaml", ".yml", ".toml", ".ini", ".log", ".rst",
    ".py", ".js", ".ts", ".tsx", ".jsx", ".java", ".kt", ".c", ".h", ".cpp", ".hpp", ".cs", ".go", ".rs",
    ".rb", ".php", ".swift", ".sh", ".sql", ".html", ".css", ".scss", ".lua", ".pl", ".r", ".m", ".dart",
)  # fmt: skip
DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


class Unreadable(Exception):
    """The document cannot be read; ``reason`` picks the sentence."""

    def __init__(self, reason: str, **values: object) -> None:
        super().__init__(reason)
        self.reason = reason  # encrypted | image_only | too_many_pages | bomb | broken | unknown_type
        self.values = values


@dataclass(frozen=True)
class Extract:
    """What was read: ``text`` (at most the budget), and how long the whole text was, if known."""

    text: str
    total: int
    cut: bool


def kind_of(attachment: Attachment) -> str | None:
    """``pdf``, ``docx`` or ``text`` for a document Ferry reads, else None."""
    name = (attachment.filename or "").lower()
    mime = (attachment.mime_type or "").split(";", 1)[0].strip().lower()
    if name.endswith(".pdf") or mime == "application/pdf":
        return "pdf"
    if name.endswith(".docx") or mime == DOCX_MIME:
        return "docx"
    if (
        name.endswith(TEXT_TYPES)
        or mime in ("text/markdown", "text/csv")
        or (mime.startswith("text/") and not name.endswith(".txt"))
    ):
        return "text"
    return None


Source = bytes | str
"""A document's bytes, or the path of its spool file (read from disk as the reader goes)."""


def _opened(source: Source) -> BinaryIO:
    """A stream over the bytes or the file. A file up to :data:`IN_MEMORY` is read whole first
    (pypdf's many small seeks and reads cost more on a file); a larger one is read as the reader
    goes (pypdf, given a path, would read it whole), so memory stays within READERS x IN_MEMORY."""
    if isinstance(source, bytes):
        return io.BytesIO(source)
    stream = open(source, "rb")  # noqa: SIM115 (closed by the caller's ``with``)
    if os.fstat(stream.fileno()).st_size > IN_MEMORY:
        return stream
    with stream:
        return io.BytesIO(stream.read())


def _pdf(source: Source, budget: int) -> Extract:
    # Imported when a document comes: the readers weigh 13 MB the bot does not need until then.
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        with _opened(source) as stream:
            return _pdf_pages(PdfReader(stream), budget)
    except Unreadable:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise Unreadable("broken") from exc


def _pdf_pages(reader: PdfReader, budget: int) -> Extract:
    if reader.is_encrypted and not reader.decrypt(""):
        raise Unreadable("encrypted")
    pages = len(reader.pages)
    if pages > MAX_PAGES:
        raise Unreadable("too_many_pages", pages=pages, limit=MAX_PAGES)
    parts: list[str] = []
    size = 0
    for number, page in enumerate(reader.pages, 1):
        text = (page.extract_text() or "").strip()
        if text:
            parts.append(f"[page {number}]\n{text}")
            size += len(parts[-1]) + 2
        if size > budget:
            break
    if not parts:
        raise Unreadable("image_only")
    return _fit("\n\n".join(parts), budget, complete=size <= budget)


def _docx(source: Source, budget: int) -> Extract:
    import docx

    try:
        with _opened(source) as stream, zipfile.ZipFile(stream) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
            packed = sum(info.compress_size for info in archive.infolist()) or 1
        if unpacked > MAX_UNPACKED or unpacked / packed > MAX_RATIO:
            raise Unreadable("bomb")
        with _opened(source) as stream:
            document = docx.Document(stream)
        lines = [p.text for p in document.paragraphs]
        for table in document.tables:
            lines += [" | ".join(cell.text for cell in row.cells) for row in table.rows]
    except Unreadable:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise Unreadable("broken") from exc
    text = "\n".join(line for line in lines if line.strip())
    if not text:
        raise Unreadable("empty")
    return _fit(text, budget)


def _text(source: Source, budget: int) -> Extract:
    if isinstance(source, bytes):
        data = source
    else:
        with open(source, "rb") as f:
            data = f.read()
    if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise Unreadable("unknown_type")
    for encoding in ("utf-8-sig", "utf-16") if data.startswith((b"\xff\xfe", b"\xfe\xff")) else ("utf-8-sig",):
        try:
            return _fit(data.decode(encoding), budget)
        except UnicodeDecodeError:
            continue
    return _fit(data.decode("cp1252", "replace"), budget)


def _fit(text: str, budget: int, complete: bool = True) -> Extract:
    text = text.strip()
    if len(text) <= budget and complete:
        return Extract(text, len(text), False)
    cut = text[:budget].rsplit("\n", 1)[0] if "\n" in text[:budget] else text[:budget]
    return Extract(cut, len(text), True)


def extract(kind: str, source: Source, budget: int) -> Extract:
    """The document's text within ``budget`` characters; raises :class:`Unreadable`."""
    reader = {"pdf": _pdf, "docx": _docx, "text": _text}[kind]
    return reader(source, budget)


class Documents(MediaFeature):
    """The document reader."""

    def __init__(self, registry: Registry, services: Services) -> None:
        super().__init__(registry, services)
        # Extractions at once: each holds a document's pages or text in memory and a core busy.
        self._reading = asyncio.Semaphore(READERS)

    def register(self) -> None:
        """Plug the reader in."""
        self._registry.add_attachment_reader(self.read)

    async def read(self, request: Request) -> AsyncIterator[ReplyEvent | Request]:
        """A document's text joined to the person's question; nothing for messages without one."""
        doc = next((a for a in request.msg.attachments if a.kind == "document"), None)
        if doc is None:
            return
        lang, name = request.lang, doc.filename or "document"
        if doc.over_limit is not None:
            yield self.too_large(lang, doc)
            return
        kind = kind_of(doc)
        if not doc.fetched or (kind is None and doc.filename and doc.filename.lower().endswith((".txt", ".zip"))):
            return  # not fetched, or the importer's: the stages after this answer it
        if kind is None:
            yield self._s.notice(lang, "media.doc_unknown_type", name=name)
            return
        yield StreamStart()  # the person sees the bot at work (typing, a thinking draft) at once
        framing = len(request.text) + len(name) + NOTE_ROOM
        budget = max(self._s.settings.max_message_chars - framing, 500)
        try:
            async with self._reading:
                read = await asyncio.to_thread(extract, kind, doc.source(), budget)
        except Unreadable as exc:
            log.info("document %r from %s not read: %s", name, request.msg.sender, exc.reason)
            yield self._s.notice(lang, f"media.doc_{exc.reason}", name=name, **exc.values)
            return
        note = ""
        if read.cut:
            yield self._s.notice(lang, "media.doc_cut", name=name, shown=len(read.text), total=read.total)
            note = f"\n[cut: only the first {len(read.text)} of {read.total} characters are shown]"
        body = f"[document: {name}]\n{read.text}{note}\n[end of {name}]"
        if not request.text:
            await keep_unanswered(self._s, request, body)
            yield self._s.notice(lang, "media.doc_kept", name=name)
            return
        yield dataclasses.replace(request, text=f"{request.text}\n\n{body}")


def register(registry: Registry, services: Services) -> None:
    """The document feature."""
    Documents(registry, services).register()
