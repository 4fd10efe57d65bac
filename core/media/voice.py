"""Voice notes and audio: transcribed, shown as a short quote, then answered like text.

The reader runs in the pipeline's attachment stage (:meth:`core.registry.Registry.add_attachment_reader`):
a voice note or audio file becomes its transcript, which is what the conversation stores and
exports; the person sees what was understood above the answer unless they said
``/transcripts off``. A file over a limit, audio the provider cannot decode, or silence each gets
its own sentence, and nothing is stored for them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from core.llm import ModelError
from core.media.feature import MediaFeature
from core.media.transcribe import CorruptAudio, OpenAITranscriber, Transcriber, Transcript
from core.registry import Registry
from core.request import Request
from core.services import Services
from core.store.base import UsageRecord, UserRecord
from core.types import Attachment, Notice, ReplyEvent, StreamStart

log = logging.getLogger(__name__)

SHOWN_CHARS = 280  # the quoted transcript above the answer; the model gets all of it
_MODEL_ERRORS = ("quota", "rate_limited", "provider_down", "unknown_model", "auth")

TranscriberSource = Callable[[], AbstractAsyncContextManager[Transcriber]]
"""Lends a transcriber for one voice note."""


def transcripts_shown(user: UserRecord) -> bool:
    """Whether the person sees the quoted transcript above answers (on unless turned off)."""
    return user.extra.get("transcripts", True) is not False


def quoted(text: str, limit: int = SHOWN_CHARS) -> str:
    """The transcript as a short quote: one paragraph, cut at a word with an ellipsis."""
    line = " ".join(text.split())
    if len(line) > limit:
        line = (line[:limit].rsplit(" ", 1)[0] or line[:limit]).rstrip(" ,.;:") + "…"
    return line


class Voice(MediaFeature):
    """The voice-note reader and ``/transcripts``."""

    def __init__(self, registry: Registry, services: Services, source: TranscriberSource | None = None) -> None:
        super().__init__(registry, services)
        self._source = source or self._openai
        self._client: OpenAITranscriber | None = None

    @asynccontextmanager
    async def _openai(self) -> AsyncIterator[Transcriber]:
        # One client for the process: building one loads the TLS trust store (~100 ms of CPU).
        if self._client is None:
            settings = self._s.settings
            model = settings.transcription_model
            self._client = OpenAITranscriber(settings.openai_base_url, settings.openai_api_key, model)
        yield self._client

    def register(self) -> None:
        """Plug the reader and the command in."""
        self._registry.add_attachment_reader(self.read)
        self._registry.add_command("transcripts", self.transcripts)

    async def read(self, request: Request) -> AsyncIterator[ReplyEvent | Request]:
        """A voice note or audio file as its transcript; nothing when the message has none."""
        audio = next((a for a in request.msg.attachments if a.kind in ("voice", "audio")), None)
        if audio is None or (not audio.fetched and audio.over_limit is None):
            return  # not fetched for another reason: the input stage answers it
        lang = request.lang
        if audio.over_limit is not None:
            yield self.too_large(lang, audio)
            return
        refusal = await self._registry.refusal(request)  # transcribing costs money too
        if refusal is not None:
            yield refusal
            return
        yield StreamStart()  # the person sees the bot at work (typing, a thinking draft) at once
        transcript = await self._transcribe(request, audio)
        if isinstance(transcript, Notice):
            yield transcript
            return
        text = transcript.text
        if text and transcripts_shown(request.user):
            yield Notice(self._s.texts.get(lang, "media.transcript", text=quoted(text)))
        # Counted once the person sees what was understood: the usage write is not in its way.
        await self._account(request, audio, transcript.seconds)
        if not text:
            yield self._s.notice(lang, "media.no_speech")
            return
        question = f"{request.text}\n\n{text}" if request.text else text
        yield dataclasses.replace(request, text=question)

    async def _transcribe(self, request: Request, audio: Attachment) -> Transcript | Notice:
        lang = request.lang
        model = self._s.settings.transcription_model
        try:
            data = await asyncio.to_thread(audio.read)  # from the spool file, off the event loop
            async with self._source() as transcriber:
                transcript = await transcriber.transcribe(data, audio.mime_type, lang)
        except CorruptAudio as exc:
            log.info("audio from %s could not be decoded: %s", request.msg.sender, exc)
            return self._s.notice(lang, "media.audio_corrupt")
        except ModelError as exc:
            log.warning("transcription with %s failed: %s", model, exc)
            kind = exc.kind if exc.kind in _MODEL_ERRORS else "transcription"
            key = "media.transcription_failed" if kind == "transcription" else f"error.{kind}"
            return self._s.notice(lang, key, model=model)
        return transcript

    async def _account(self, request: Request, audio: Attachment, reported: float | None) -> None:
        """Record the transcription's cost: the audio's minutes at the catalogue's price."""
        await request.recorded()
        seconds = reported or audio.duration or 0.0
        model = self._s.settings.transcription_model
        cost = seconds / 60 * self._s.catalogue.get(model).audio_price
        if cost > 0:
            await self._s.store.add_usage(UsageRecord(request.user.id, "", model, 0, 0, cost, self._s.clock()))

    async def transcripts(self, request: Request, args: str) -> AsyncIterator[ReplyEvent]:
        """/transcripts on|off: show or hide the quoted transcript above answers to voice notes."""
        shown = transcripts_shown(request.user)
        async for event in self.switch(request, args, "transcripts", shown, "media.transcripts_are"):
            yield event


def register(registry: Registry, services: Services) -> None:
    """The voice feature, transcribing through the configured provider."""
    Voice(registry, services).register()
