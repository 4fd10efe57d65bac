"""How big the model's context window really is, and what to do when the provider says "too large".

The catalogue knows the big hosted families; a self-hosted model is unknown to it, and the
catalogue's 8,192-token default is wrong both ways (llama.cpp's server defaults to 2,048). So the
window is, in order: the ``FERRY_CONTEXT_WINDOW`` setting; the catalogue's value for a known
model; what the server reports; the catalogue's default. When the provider still answers
"too large", the context is trimmed to what it said (or to half) and sent once more.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

import openai

from core.catalogue import ModelInfo
from core.context import ContextTooLarge
from core.llm import ModelClient, ModelError, ModelEvent

log = logging.getLogger(__name__)

_LIMIT_IN_MESSAGE = re.compile(r"(?:context length|context window|context size|n_ctx)\D{0,40}?(\d[\d,]{2,})", re.I)


class WindowReporter(Protocol):
    """A model client that can ask its server for a model's window (``OpenAIModelClient`` can)."""

    async def context_window(self, model: str) -> int | None:
        """The window in tokens the server reports, or None."""
        ...


def props_url(base_url: str) -> str:
    """llama.cpp's ``/props`` lives at the server root, beside ``/v1``."""
    root = base_url.rstrip("/")
    return (root[: -len("/v1")] if root.endswith("/v1") else root) + "/props"


def _positive(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def reported_window(model: str, models_reply: Any, props_reply: Any) -> int | None:
    """The window from a ``GET /v1/models`` reply and a llama.cpp ``GET /props`` reply (either may be None).

    * vLLM: ``data[].max_model_len`` (vllm/entrypoints/openai/protocol.py ``ModelCard``).
    * OpenRouter: ``data[].context_length`` and ``data[].top_provider.context_length``.
    * llama.cpp ``llama-server``: ``/props`` ``default_generation_settings.n_ctx`` (older builds:
      top-level ``n_ctx``); ``/v1/models`` ``meta.n_ctx_train`` is only the training length, so
      it is the last resort.
    """
    entries = models_reply.get("data") if isinstance(models_reply, Mapping) else None
    entry: Mapping[str, Any] = {}
    for item in entries if isinstance(entries, list) else ():
        if isinstance(item, Mapping) and item.get("id") == model:
            entry = item
    if not entry and isinstance(entries, list) and len(entries) == 1 and isinstance(entries[0], Mapping):
        entry = entries[0]  # a local server serves one model, whatever name it was asked for
    top = entry.get("top_provider")
    for value in (
        entry.get("max_model_len"),
        entry.get("context_length"),
        top.get("context_length") if isinstance(top, Mapping) else None,
    ):
        if found := _positive(value):
            return found
    if isinstance(props_reply, Mapping):
        settings = props_reply.get("default_generation_settings")
        for value in (settings.get("n_ctx") if isinstance(settings, Mapping) else None, props_reply.get("n_ctx")):
            if found := _positive(value):
                return found
    meta = entry.get("meta")
    return _positive(meta.get("n_ctx_train")) if isinstance(meta, Mapping) else None


async def resolve_model(info: ModelInfo, client: ModelClient | WindowReporter, setting: int | None) -> ModelInfo:
    """``info`` with the window Ferry should fit the context to (see the module docstring)."""
    if setting:
        return dataclasses.replace(info, context_window=setting)
    if info.known:
        return info
    ask = getattr(client, "context_window", None)
    window = await ask(info.name) if ask is not None else None
    return dataclasses.replace(info, context_window=window) if window else info


@dataclasses.dataclass(frozen=True)
class Reported:
    """What the server said of a model's window: the window (None: it does not say), and whether
    that is its answer (False: it did not answer, or only with a 5xx; ask again later)."""

    window: int | None
    final: bool


async def ask_window(client: openai.AsyncOpenAI, model: str, wait: float) -> Reported:
    """Ask ``/v1/models`` and llama.cpp's ``/props`` for the window (see :func:`reported_window`).

    A server that is down, too slow, or answers 5xx has not said: llama.cpp answers 503 while it
    loads its model, and a provider's bad minute passes. Its silence is not final, unlike a 404
    (no ``/props`` outside llama.cpp) or a list without the window.
    """
    answers: list[Any] = []
    final = True
    for url in ("/models", props_url(str(client.base_url))):
        try:
            async with asyncio.timeout(wait):
                answers.append(await client.get(url, cast_to=object))
        except (openai.OpenAIError, TimeoutError, ValueError) as exc:
            log.debug("no context window from %s: %r", url, exc)
            answers.append(None)
            if isinstance(exc, (openai.APIConnectionError, TimeoutError)) or (
                isinstance(exc, openai.APIStatusError) and exc.status_code >= 500
            ):
                final = False
    window = reported_window(model, answers[0], answers[1])
    if window is not None or final:
        log.info("the model server reports a context window of %s tokens for %s", window, model)
        return Reported(window, True)
    log.info("the model server did not say what context window %s has; asking again later", model)
    return Reported(None, False)


def limit_in_message(message: str) -> int | None:
    """The window a "too large" error names ("maximum context length is 2048 tokens"), if any."""
    found = _LIMIT_IN_MESSAGE.search(message)
    return int(found.group(1).replace(",", "")) if found else None


Refit = Callable[[int], tuple[list[dict[str, str]], int]]
"""Given a window in tokens, the messages and reply budget that fit it (raises ContextTooLarge)."""


async def stream_fitted(
    client: ModelClient, model: str, messages: list[dict[str, str]], max_tokens: int,
    window: int, refit: Refit,
) -> AsyncIterator[ModelEvent]:
    """Stream the answer; when the provider says "too large" before any text, refit and try once more.

    The second try fits the window the error names, or half of ``window`` when it names none.
    A second "too large" (or a context that cannot be made to fit: ContextTooLarge from
    ``refit``) is raised as ``too_large``, whose text tells the person to start anew with /new.
    """
    try:
        async for event in client.stream(model, messages, max_tokens):
            yield event
        return
    except ModelError as exc:
        if exc.kind != "too_large":
            raise
        named = limit_in_message(exc.message)
    smaller = named if named and named < window else window // 2
    try:
        messages, max_tokens = refit(smaller)
    except ContextTooLarge as exc:
        raise ModelError("too_large", str(exc)) from exc
    async for event in client.stream(model, messages, max_tokens):
        yield event


def length_marker_key(prompt_tokens: int, completion_tokens: int, max_tokens: int, window: int) -> str:
    """The locale key for an answer that stopped at a length limit.

    "Write «continue»" helps only when the answer used up its own budget; when the context
    window filled up (llama.cpp's server stops there, with the same ``length`` reason),
    continuing only overflows it: starting anew with /new is the advice that works.
    """
    if completion_tokens < max_tokens and prompt_tokens + completion_tokens >= window * 0.9:
        return "window.stopped"
    return "chat.stopped_length"
