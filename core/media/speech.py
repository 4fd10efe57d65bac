"""``/voice on``: answers to voice notes also arrive as voice notes (``/v1/audio/speech``).

After an answer to a voice note or audio file is stored (an after-answer hook), its text is
spoken with ``FERRY_SPEECH_MODEL`` as OGG/Opus, which Telegram plays as a voice note
(``sendVoice``) and Signal as an audio attachment; the text answer stays above it. Off by default.
A failure costs the person nothing but the voice: the text was already delivered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import openai

from core.media.feature import MediaFeature
from core.registry import Registry
from core.request import Request
from core.services import Services
from core.store.base import UsageRecord, UserRecord
from core.types import FileReply, ReplyEvent

log = logging.getLogger(__name__)

VOICE = "alloy"
INPUT_LIMIT = 4096  # characters the speech endpoint takes


def voice_answers(user: UserRecord) -> bool:
    """Whether the person asked for spoken answers to their voice notes."""
    return user.extra.get("voice") is True


class Speech(MediaFeature):
    """``/voice`` and the hook that speaks answers to voice notes."""

    def register(self) -> None:
        """Plug the command and the after-answer hook in."""
        self._registry.add_command("voice", self.voice)
        self._registry.add_answer_hook(self.speak)

    async def voice(self, request: Request, args: str) -> AsyncIterator[ReplyEvent]:
        """/voice on|off."""
        async for event in self.switch(request, args, "voice", voice_answers(request.user), "media.voice_is"):
            yield event

    async def speak(self, request: Request, usage: UsageRecord) -> AsyncIterator[ReplyEvent]:
        """The answer just stored, spoken, when it answered a voice note and /voice is on."""
        spoken = any(a.kind in ("voice", "audio") for a in request.msg.attachments)
        if not spoken or not voice_answers(request.user):
            return
        last = await self._s.store.get_messages(usage.conversation_id, last=1)
        if not last or last[0].role != "assistant" or not last[0].content.strip():
            return
        try:
            audio = await self._synthesise(last[0].content[:INPUT_LIMIT])
        except (openai.OpenAIError, TimeoutError) as exc:
            log.warning("speech with %s failed: %s", self._s.settings.speech_model, exc)
            yield self._s.notice(request.lang, "media.voice_failed")
            return
        yield FileReply("answer.ogg", audio, "audio/ogg")

    async def _synthesise(self, text: str) -> bytes:
        async with asyncio.timeout(120):
            response = await self.openai_client().audio.speech.create(
                model=self._s.settings.speech_model, voice=VOICE, input=text, response_format="opus"
            )
            return response.content


def register(registry: Registry, services: Services) -> None:
    """The spoken-answers feature."""
    Speech(registry, services).register()
