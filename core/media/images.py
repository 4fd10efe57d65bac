"""Photos for models that can see: scaled within the provider's limits, kept in the data folder,
and put back into the context as image content parts.

A stored message refers to its photos with Markdown image links to ``ferry-image:<name>``, so
the export shows them and the store needs no new field; :func:`attach` turns the links of the
newest ``recent`` photos into ``image_url`` parts (base64 data URLs, as the Chat Completions API
takes them) and older ones into a short text placeholder, keeping the context bounded.

Decompression bombs are refused from the header alone, before any pixel is decoded: Pillow
opens lazily, and an image claiming more than :data:`MAX_PIXELS` pixels is never loaded.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import re
import shutil
import uuid
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from core.store.base import Store
from core.types import FileReply

MAX_SIDE = 2048
"""OpenAI scales high-detail images to fit 2048 × 2048 anyway; sending more only costs bandwidth."""
MAX_PIXELS = 50_000_000
"""Larger claims are refused unread (a 50 MP photo is already more than any phone sends)."""
RECENT = 4
"""Photos kept in the context as images; older ones become a text placeholder."""
JPEG_QUALITY = 85
LINK = re.compile(r"!\[[^\]]*\]\(ferry-image:([0-9a-f]{24}/[0-9a-f]{32}\.jpg)\)")
"""A photo link in a stored message; the path is relative to ``<data dir>/images`` (it names the
folder it was first kept in, so it still resolves after /link moves the conversation)."""
MAX_CONVERSATIONS = 100_000


class BadImage(Exception):
    """The file is not an image Ferry can read (broken, unknown format, or a decompression bomb)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "bomb" or "unreadable"


def prepare(data: bytes) -> bytes:
    """The image as a JPEG no larger than :data:`MAX_SIDE` on its long side; raises :class:`BadImage`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise BadImage("bomb")
                image.draft("RGB", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at a reduced scale
                image.thumbnail((MAX_SIDE, MAX_SIDE))
                rgb = image.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImage("bomb") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise BadImage("unreadable") from exc
    out = io.BytesIO()
    rgb.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()


def folder(data_dir: Path, scope: str) -> Path:
    """Where one scope's (a person's or a group's) photos are kept."""
    return data_dir / "images" / hashlib.sha256(scope.encode()).hexdigest()[:24]


def save(data_dir: Path, scope: str, jpeg: bytes) -> str:
    """Keep a prepared photo; returns the link that refers to it in a message."""
    name = f"{uuid.uuid4().hex}.jpg"
    where = folder(data_dir, scope)
    where.mkdir(parents=True, exist_ok=True)
    (where / name).write_bytes(jpeg)
    return f"![photo](ferry-image:{where.name}/{name})"


async def referenced(store: Store, scope: str) -> list[str]:
    """The photos the scope's stored messages link to (paths relative to ``images/``), oldest first."""
    found: list[str] = []
    for conv in reversed(await store.list_conversations(scope, MAX_CONVERSATIONS)):
        for message in await store.get_messages(conv.id):
            found += LINK.findall(message.content)
    return found


async def forget(store: Store, data_dir: Path, scope: str) -> None:
    """Delete the scope's photos (``/forget``); call before the messages are deleted."""
    for path in await referenced(store, scope):
        (data_dir / "images" / path).unlink(missing_ok=True)
    shutil.rmtree(folder(data_dir, scope), ignore_errors=True)


async def archive(store: Store, data_dir: Path, scope: str, name: str) -> FileReply | None:
    """The scope's photos as one ZIP whose paths match the links in the export (``/export``)."""
    paths = [p for p in await referenced(store, scope) if (data_dir / "images" / p).is_file()]
    if not paths:
        return None

    def pack() -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zipped:  # JPEGs do not compress
            for path in paths:
                zipped.write(data_dir / "images" / path, f"images/{path}")
        return out.getvalue()

    return FileReply(name, await asyncio.to_thread(pack), "application/zip")


def files(data_dir: Path, scope: str) -> list[Path]:
    """The photos kept for a scope, oldest first (``/export``)."""
    where = folder(data_dir, scope)
    return sorted(where.glob("*.jpg"), key=lambda p: p.stat().st_mtime) if where.is_dir() else []


def attach(
    messages: Sequence[dict[str, Any]], data_dir: Path, vision: bool, placeholder: str, recent: int = RECENT
) -> list[dict[str, Any]]:
    """The messages with photo links as image parts (the newest ``recent``), others as ``placeholder``."""
    if not any(isinstance(m.get("content"), str) and "ferry-image:" in m["content"] for m in messages):
        return list(messages)
    budget = recent if vision else 0
    out: list[dict[str, Any]] = []
    for message in reversed(messages):
        content = message.get("content")
        if not isinstance(content, str) or message.get("role") != "user" or not LINK.search(content):
            out.append(message)
            continue
        parts: list[dict[str, Any]] = []
        text = LINK.sub("", content).strip()
        for name in reversed(LINK.findall(content)):
            path = data_dir / "images" / name
            if budget > 0 and path.is_file():
                budget -= 1
                url = "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode()
                parts.insert(0, {"type": "image_url", "image_url": {"url": url}})
            else:
                text = f"{placeholder}\n{text}".strip()
        if not any(p["type"] == "image_url" for p in parts):
            out.append({**message, "content": text or placeholder})
            continue
        out.append({**message, "content": [{"type": "text", "text": text or placeholder}, *parts]})
    out.reverse()
    return out
