"""``/image PROMPT``: a picture from ``/v1/images/generations``, sent as a photo and accounted.

The request goes through the official ``openai`` client (``images.generate``); gpt-image models
always answer with ``b64_json``, DALL·E ones are asked for it. The picture costs the catalogue's
``image_price`` for ``FERRY_IMAGE_MODEL``, recorded as usage so budgets and ``/usage`` count it;
the command sits behind the budget check like every request to a model.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import AsyncIterator
from typing import Literal

import openai

from core.llm import ModelError, classify
from core.media.feature import MediaFeature
from core.registry import Registry
from core.request import Request
from core.services import Services
from core.store.base import UsageRecord
from core.types import FileReply, Reaction, ReplyEvent

log = logging.getLogger(__name__)

PROMPT_LIMIT = 4000  # characters; dall-e-3 takes 4,000, gpt-image-1 32,000
_MODEL_ERRORS = ("quota", "rate_limited", "provider_down", "unknown_model", "auth")


class ImageRefused(Exception):
    """The provider declined the prompt (its safety system)."""


class ImageGenerator(MediaFeature):
    """``/image``, with one client per process (built on first use)."""

    def register(self) -> None:
        """Plug the command in (behind the budget check)."""
        self._registry.add_command("image", self.image, uses_model=True)

    async def generate(self, prompt: str) -> bytes:
        """The picture's bytes; raises :class:`ModelError` or :class:`ImageRefused`."""
        model = self._s.settings.image_model
        response_format: Literal["b64_json"] | openai.Omit = "b64_json" if model.startswith("dall-e") else openai.omit
        try:
            async with asyncio.timeout(180):
                result = await self.openai_client().images.generate(
                    model=model, prompt=prompt, n=1, size="1024x1024", response_format=response_format
                )
        except openai.BadRequestError as exc:
            if exc.code == "content_policy_violation" or "safety" in str(exc.message).lower():
                raise ImageRefused(exc.message) from exc
            raise classify(exc) from exc
        except (openai.OpenAIError, TimeoutError) as exc:
            raise classify(exc) from exc
        first = result.data[0] if result.data else None
        if first is None or not first.b64_json:
            raise ModelError("bad_response", "the image answer has no b64_json")
        try:
            return base64.b64decode(first.b64_json, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ModelError("bad_response", "the image answer is not base64") from exc

    async def image(self, request: Request, args: str) -> AsyncIterator[ReplyEvent]:
        """/image PROMPT: draw it, send it as a photo, account its price."""
        lang, prompt = request.lang, args.strip()
        model = self._s.settings.image_model
        if not prompt:
            yield self._s.notice(lang, "media.image_usage")
            return
        if len(prompt) > PROMPT_LIMIT:
            yield self._s.notice(lang, "media.image_prompt_long", limit=PROMPT_LIMIT)
            return
        yield Reaction("👀")  # drawing takes a while
        try:
            data = await self.generate(prompt)
        except ImageRefused as exc:
            log.info("image prompt declined by the provider: %s", exc)
            yield self._s.notice(lang, "media.image_refused")
            return
        except ModelError as exc:
            log.warning("image generation with %s failed: %s", model, exc)
            key = f"error.{exc.kind}" if exc.kind in _MODEL_ERRORS else "media.image_failed"
            yield self._s.notice(lang, key, model=model)
            return
        cost = self._s.catalogue.get(model).image_price
        await self._s.store.add_usage(UsageRecord(request.user.id, "", model, 0, 0, cost, self._s.clock()))
        yield FileReply("image.png", data, "image/png", caption=prompt[:200])


def register(registry: Registry, services: Services) -> None:
    """The /image feature."""
    ImageGenerator(registry, services).register()
