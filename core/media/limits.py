"""The size limits on files, named so the person is told the one that really applies.

An adapter checks a file's announced size against :func:`fetch_limit` *before* downloading it
and, when it is over, passes the attachment on without data and with ``over_limit`` set; the
core then says so in one sentence (:func:`limit_notice_values`).
"""

from __future__ import annotations

from core.types import FileLimit

MB = 1024 * 1024

TRANSCRIPTION = FileLimit("transcription", 25 * MB)
"""OpenAI's ``/v1/audio/transcriptions`` takes files up to 25 MB (API reference, ``file``)."""

IMAGE = FileLimit("image", 20 * MB)
"""OpenAI takes images up to 20 MB each (vision guide); Ferry scales them down before sending."""

DOCUMENT = FileLimit("document", 50 * 1024 * 1024)
"""Documents (and WhatsApp exports) Ferry reads: more is not a message for a chat model."""

TELEGRAM_CLOUD = FileLimit("telegram", 20 * MB)
"""The cloud Bot API lets bots download files up to 20 MB (Bot API ``getFile``)."""

TELEGRAM_LOCAL = FileLimit("telegram_local", 2000 * MB)
"""A self-hosted Bot API server (``TELEGRAM_API_URL``) serves files up to 2000 MB."""

SIGNAL = FileLimit("signal", 100 * MB)
"""Signal's own attachment limit (signal-cli downloads at most 150 MiB)."""

AUDIO_KINDS = frozenset({"voice", "audio", "video_note"})
"""Kinds that are transcribed."""


def kind_limit(kind: str) -> FileLimit | None:
    """The limit the core itself puts on a kind of file, if any."""
    if kind in AUDIO_KINDS:
        return TRANSCRIPTION
    return {"photo": IMAGE, "document": DOCUMENT}.get(kind)


def fetch_limit(kind: str, messenger: FileLimit) -> FileLimit:
    """The smallest limit that applies to fetching a file of ``kind`` from a messenger."""
    own = kind_limit(kind)
    return own if own is not None and own.size < messenger.size else messenger


def over(kind: str, size: int | None, messenger: FileLimit) -> FileLimit | None:
    """The limit a file of that announced size is over, or None when it may be fetched."""
    limit = fetch_limit(kind, messenger)
    return limit if size is not None and size > limit.size else None


def megabytes(size: int) -> str:
    """A size in whole megabytes as people read them (rounded up, at least 1)."""
    return str(max(1, -(-size // MB)))
