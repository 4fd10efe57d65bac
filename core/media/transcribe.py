"""Speech to text through any OpenAI-compatible ``POST /v1/audio/transcriptions``.

The official ``openai`` client sends the multipart request (``model``, ``language``, ``file``);
the answer's ``text`` is the transcript. Failures become one :class:`~core.llm.ModelError`, and audio
the provider could not decode one :class:`CorruptAudio` (OpenAI answers 400
"The audio file could not be decoded or its format is not supported." /
"Invalid file format. Supported formats: [...]").
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

import openai

from core.llm import ModelError, classify

# OpenAI checks the file name's extension against its list (flac, m4a, mp3, mp4, mpeg, mpga,
# oga, ogg, wav, webm) before decoding the content, so each MIME type gets a name it accepts.
_EXTENSIONS = {
    "audio/ogg": "ogg",
    "audio/opus": "ogg",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/mp4": "m4a",
    "audio/m4a": "m4a",
    "audio/x-m4a": "m4a",
    "audio/aac": "m4a",  # Signal's voice notes; decoded by content, the name only has to pass
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/flac": "flac",
    "audio/webm": "webm",
    "video/mp4": "mp4",
    "video/webm": "webm",
}
_CORRUPT_HINTS = ("could not be decoded", "invalid file format", "not supported", "corrupt", "unrecognized")


class CorruptAudio(Exception):
    """The provider could not decode the audio (broken, or a format it does not take)."""


@dataclass(frozen=True)
class Transcript:
    """What was understood; ``seconds`` is the audio's length when the provider said."""

    text: str
    seconds: float | None = None


class Transcriber(Protocol):
    """What the voice feature needs from a speech-to-text provider."""

    async def transcribe(self, data: bytes, mime_type: str | None, language: str | None) -> Transcript:
        """The transcript of ``data``; raises :class:`ModelError` or :class:`CorruptAudio`."""
        ...


def upload_name(mime_type: str | None) -> str:
    """A file name whose extension the transcription API accepts for that MIME type."""
    base = (mime_type or "").split(";", 1)[0].strip().lower()
    return f"audio.{_EXTENSIONS.get(base, 'ogg')}"


class OpenAITranscriber:
    """A :class:`Transcriber` on ``openai.AsyncOpenAI`` for ``model`` at ``base_url``."""

    def __init__(self, base_url: str | None, api_key: str | None, model: str, timeout: float = 120.0) -> None:
        self.model = model
        self._client = openai.AsyncOpenAI(base_url=base_url or None, api_key=api_key or "no-key", max_retries=1)
        self._timeout = timeout

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.close()

    async def transcribe(self, data: bytes, mime_type: str | None, language: str | None) -> Transcript:
        """Send the audio; the user's language is a hint that improves accuracy and speed."""
        name = upload_name(mime_type)
        try:
            async with asyncio.timeout(self._timeout):
                result = await self._client.audio.transcriptions.create(
                    model=self.model,
                    file=(name, data, mime_type or "application/octet-stream"),
                    language=language or openai.omit,
                    response_format="json",
                )
        except openai.BadRequestError as exc:
            message = str(exc.message).lower()
            if any(hint in message for hint in _CORRUPT_HINTS):
                raise CorruptAudio(exc.message) from exc
            raise classify(exc) from exc
        except (openai.OpenAIError, TimeoutError) as exc:
            raise classify(exc) from exc
        text = getattr(result, "text", None)
        if not isinstance(text, str):
            raise ModelError("bad_response", "the transcription answer has no text")
        seconds = getattr(result, "duration", None)
        return Transcript(text.strip(), float(seconds) if isinstance(seconds, int | float) else None)
