"""What every media feature shares: its registry and services, the sentence for a file over a
limit, the ``/voice``-style on/off switches, and one OpenAI client per feature, built on first use
(building one loads the TLS trust store, ~100 ms of CPU).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import openai

from core.media.limits import megabytes
from core.registry import Registry
from core.request import Request
from core.services import Services
from core.types import Attachment, Notice, ReplyEvent


class MediaFeature:
    """The base of the media features (photos, documents, voice, speech, pictures)."""

    def __init__(self, registry: Registry, services: Services) -> None:
        self._registry = registry
        self._s = services
        self._client_cache: openai.AsyncOpenAI | None = None

    def openai_client(self) -> openai.AsyncOpenAI:
        """The feature's client for the configured OpenAI-compatible provider."""
        if self._client_cache is None:
            settings = self._s.settings
            self._client_cache = openai.AsyncOpenAI(
                base_url=settings.openai_base_url or None, api_key=settings.openai_api_key or "no-key", max_retries=1
            )
        return self._client_cache

    def too_large(self, lang: str, attachment: Attachment) -> Notice:
        """The one sentence for a file over a limit, naming the limit that applies."""
        limit = attachment.over_limit
        assert limit is not None
        size = megabytes(attachment.size or limit.size + 1)
        return self._s.notice(lang, f"media.limit_{limit.name}", size=size, limit=megabytes(limit.size))

    async def switch(
        self, request: Request, args: str, flag: str, now_on: bool, state_key: str
    ) -> AsyncIterator[ReplyEvent]:
        """``/FLAG on|off``: store the person's choice in ``extra[FLAG]``; without one, say the state.

        The texts are ``media.FLAG_on``/``_off`` for a change and ``STATE_KEY_on``/``_off``."""
        choice = args.strip().lower()
        if choice not in ("on", "off"):
            yield self._s.notice(request.lang, f"{state_key}_{'on' if now_on else 'off'}")
            return
        extra = {**request.user.extra, flag: choice == "on"}
        await self._s.store.put_user(dataclasses.replace(request.user, extra=extra))
        yield self._s.notice(request.lang, f"media.{flag}_{choice}")
