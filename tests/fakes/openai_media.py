"""The media endpoints of the fake OpenAI server: transcription (and, as they land, speech,
image generation and image content parts), registered on :class:`~tests.fakes.openai_server.FakeOpenAI`.

Modelled on the OpenAI API reference and openai-python's types
(``openai/resources/audio/transcriptions.py``, ``types/audio/transcription_create_params.py``):

* ``POST /v1/audio/transcriptions`` is ``multipart/form-data`` with a ``file`` part and ``model``
  (both required; a missing one is a 400 ``invalid_request_error`` naming the ``param``),
  optional ``language`` (ISO-639-1), ``prompt``, ``response_format`` (``json`` default →
  ``{"text": ...}``; ``text`` → the bare text; ``verbose_json`` adds ``duration``).
* Files are limited to 25 MB: larger bodies get 413 "Maximum content size limit (26214400)
  exceeded".
* The file name's extension must be one of flac, m4a, mp3, mp4, mpeg, mpga, oga, ogg, wav, webm
  (400 "Invalid file format. Supported formats: [...]"); content that does not decode is a 400
  "The audio file could not be decoded or its format is not supported."

The fake "decodes" audio by its magic bytes (OggS, ID3 / MPEG frame sync, RIFF…WAVE, fLaC,
EBML, an ``ftyp`` box, an AAC ADTS header) and "hears" the UTF-8 text that follows the header,
so a test makes a voice note that says "hello" with :func:`speech`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TRANSCRIPTION_LIMIT = 25 * 1024 * 1024
AUDIO_FORMATS = ("flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm")

_MAGIC: tuple[tuple[int, bytes], ...] = (
    (0, b"OggS"),
    (0, b"ID3"),
    (0, b"\xff\xfb"),
    (0, b"fLaC"),
    (0, b"\x1a\x45\xdf\xa3"),
    (4, b"ftyp"),
    (0, b"\xff\xf1"),
    (0, b"\xff\xf9"),
)
_HEADERS = {"ogg": b"OggS", "mp3": b"ID3", "aac": b"\xff\xf1", "m4a": b"\x00\x00\x00\x18ftyp", "wav": b"RIFF"}


def speech(words: str, container: str = "ogg") -> bytes:
    """Audio bytes the fake hears as ``words`` (``container``: ogg, mp3, aac, m4a, wav)."""
    head = _HEADERS[container]
    if container == "wav":
        head = b"RIFF\x00\x00\x00\x00WAVE"
    return head + words.encode()


def _heard(data: bytes) -> str | None:
    """The words in fake audio, or None when it does not decode."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return data[12:].decode("utf-8", "replace").strip()
    for offset, magic in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return data[offset + len(magic) :].decode("utf-8", "replace").strip()
    return None


def _error(status: int, message: str, param: str | None = None, code: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}
    return web.json_response(body, status=status)


@dataclass
class Transcription:
    """One transcription request as the fake received it."""

    model: str
    filename: str
    content_type: str
    size: int
    language: str | None
    response_format: str


@dataclass
class FakeMedia:
    """What the media endpoints received, and how they should fail next."""

    transcriptions: list[Transcription] = field(default_factory=list)
    failures: list[web.Response] = field(default_factory=list)

    def fail_next(self, status: int, message: str, code: str | None = None) -> None:
        """Answer the next media request with an error body (e.g. 429 rate limit)."""
        self.failures.append(_error(status, message, code=code))

    async def transcriptions_endpoint(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/audio/transcriptions``."""
        if request.content_length is not None and request.content_length > TRANSCRIPTION_LIMIT + 64 * 1024:
            return _error(413, f"Maximum content size limit ({TRANSCRIPTION_LIMIT}) exceeded")
        if request.content_type != "multipart/form-data":
            return _error(400, "Could not parse multipart form", param=None)
        form = await request.post()
        upload = form.get("file")
        model = form.get("model")
        if not isinstance(upload, web.FileField):
            return _error(400, "you must provide a file", param="file")
        if not isinstance(model, str) or not model:
            return _error(400, "you must provide a model parameter", param="model")
        data = upload.file.read()
        language = form.get("language")
        fmt = str(form.get("response_format") or "json")
        self.transcriptions.append(
            Transcription(
                model, upload.filename, upload.content_type, len(data),
                language if isinstance(language, str) else None, fmt,
            )
        )  # fmt: skip
        if self.failures:
            return self.failures.pop(0)
        if len(data) > TRANSCRIPTION_LIMIT:
            return _error(413, f"Maximum content size limit ({TRANSCRIPTION_LIMIT}) exceeded")
        if isinstance(language, str) and (len(language) != 2 or not language.isalpha()):
            return _error(
                400,
                f"Invalid language '{language}'. Language parameter must be specified in ISO-639-1 format.",
                "language",
            )
        extension = upload.filename.rsplit(".", 1)[-1].lower() if "." in upload.filename else ""
        if extension not in AUDIO_FORMATS:
            return _error(400, f"Invalid file format. Supported formats: {list(AUDIO_FORMATS)}", "file")
        text = _heard(data)
        if text is None:
            return _error(400, "The audio file could not be decoded or its format is not supported.", "file")
        if fmt == "text":
            return web.Response(text=text + "\n", content_type="text/plain")
        body: dict[str, Any] = {"text": text}
        if fmt == "verbose_json":
            body.update(task="transcribe", language="english", duration=round(len(text.split()) / 2.5, 2))
        return web.json_response(body)


def install(app: web.Application) -> FakeMedia:
    """Register the media endpoints on the fake's application (before it starts); returns their state."""
    media = FakeMedia()
    app.router.add_post("/v1/audio/transcriptions", media.transcriptions_endpoint)
    return media
