"""Fixtures shared by the media tests: the fakes and a real assistant on them."""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bots.signal.process import SignalAdapter
from bots.telegram.process import Pacing, build_application
from core.app import assemble
from core.assistant import Assistant
from core.llm import OpenAIModelClient
from core.media.spool import Spool
from core.settings import Settings
from core.store.memory import MemoryStore
from tests.bots.test_signal_bot import FAST as SIGNAL_FAST
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.signal_server import FakeSignalServer
from tests.fakes.telegram_server import FakeTelegram

FAST = Pacing(draft_interval=0.05, edit_interval=0.1, typing_interval=0.5)


@pytest.fixture
async def ai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(chunk_size=4) as server:
        yield server


@pytest.fixture
def model() -> str:
    """The answering model; ``fake-model`` is not in the catalogue, so it cannot see."""
    return "fake-model"


@pytest.fixture
async def assistant(ai: FakeOpenAI, tmp_path: Path, model: str) -> AsyncIterator[Assistant]:
    settings = Settings(
        openai_base_url=ai.base_url,
        openai_api_key="test",
        model=model,
        data_dir=tmp_path,
        access="open",
        model_retries=0,
        rate_per_minute=1000,
    )
    inner = assemble(settings, MemoryStore(), OpenAIModelClient(ai.base_url, "test", max_retries=0))
    await inner.start()
    yield inner
    await inner.close()


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


def app_for(tg: FakeTelegram, assistant: Any, **options: Any) -> Any:
    """The Telegram bot as ``ferry telegram`` runs it: received files are spooled in the data folder."""
    spool = Spool.of(assistant.settings.data_dir, "telegram")
    app = build_application(assistant, tg.token, tg.root, pacing=FAST, spool=spool)
    app.bot_data["ferry"].albums.window = options.get("album_window", 0.3)
    return app


@pytest.fixture
async def signal(assistant: Assistant) -> AsyncIterator[FakeSignalServer]:
    async with FakeSignalServer() as fake:
        adapter = SignalAdapter(
            assistant,
            service=fake.service,
            phone_number=fake.number,
            edit_interval=0.02,
            startup_backoff=SIGNAL_FAST,
            reconnect_backoff=SIGNAL_FAST,
            typing_refresh=3600,
            spool=Spool.of(assistant.settings.data_dir, "signal"),  # as ``ferry signal`` runs
        )
        await adapter.start()
        await fake.wait_connected()
        yield fake
        await adapter.stop()


def spooled_files(assistant: Assistant, platform: str) -> list[Path]:
    """The received files still in the messenger's spool (core/media/spool.py)."""
    folder = Spool.of(assistant.settings.data_dir, platform).root
    return sorted(folder.iterdir()) if folder.is_dir() else []


async def stored_user_texts(assistant: Assistant) -> list[str]:
    """Every user message stored, in order, over all users' conversations."""
    out: list[str] = []
    for user in await assistant.store.list_users():
        for conv in await assistant.store.list_conversations(f"user:{user.id}"):
            out += [m.content for m in await assistant.store.get_messages(conv.id) if m.role == "user"]
    return out


def picture(width: int = 3000, height: int = 2000, fmt: str = "PNG") -> bytes:
    """A real image of that size."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, fmt)
    return out.getvalue()


def bomb(side: int = 100_000) -> bytes:
    """A tiny PNG whose header claims ``side`` × ``side`` pixels (10 gigapixels by default)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def pdf(pages: list[str], password: str | None = None, padding: int = 0) -> bytes:
    """A real PDF with one line of text per page (an empty string makes a page without text);
    ``padding`` random bytes in an object no page uses (as scans and fonts make PDFs big)."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    font_ref = writer._add_object(font)
    for text in pages:
        page = writer.add_blank_page(612, 792)
        if not text:
            continue
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode())
        page[NameObject("/Contents")] = writer._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font_ref})}
        )
    if padding:
        blob = DecodedStreamObject()
        blob.set_data(os.urandom(padding))
        writer._add_object(blob)
    if password:
        writer.encrypt(password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def word(paragraphs: list[str]) -> bytes:
    """A real .docx file."""
    import docx

    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def word_bomb() -> bytes:
    """A .docx-named ZIP whose one entry inflates a thousandfold."""
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"\0" * 30_000_000)
    return out.getvalue()
