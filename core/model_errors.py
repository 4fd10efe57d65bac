"""What went wrong with a model request, in terms the person can be told: :class:`ModelError`.

:func:`classify` turns whatever the ``openai`` library raised (or a chunk timeout) into one
:class:`ModelError` whose ``kind`` the caller turns into a sentence (quota used up, provider
busy, provider down, request too large, ...). :mod:`core.llm` re-exports both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import openai

ErrorKind = Literal[
    "quota",
    "rate_limited",
    "provider_down",
    "too_large",
    "unknown_model",
    "auth",
    "interrupted",
    "bad_response",
]


# Providers word "the prompt is too long" in many ways; these cover OpenAI, vLLM, llama.cpp,
# Ollama, LM Studio and OpenRouter as seen in their error messages.
_TOO_LARGE_HINTS = (
    "maximum context length",
    "context length",
    "context_length",
    "context window",
    "context size",
    "too many tokens",
    "too long",
    "exceeds the context",
    "prompt is too large",
    "request too large",
)


class ModelError(Exception):
    """The model could not answer. ``kind`` says why, in terms the person can be told.

    * ``quota``: the provider account is out of credit (retrying will not help).
    * ``rate_limited``: the provider is busy (429 after retries); try again shortly.
    * ``provider_down``: 5xx after retries, no connection, or a timeout before any text.
    * ``too_large``: the request exceeds the model's context window.
    * ``unknown_model``: the provider does not know the model name.
    * ``auth``: the API key is missing, wrong, or not allowed to use the model.
    * ``interrupted``: the answer broke off after some text; ``partial_text`` holds that text.
    * ``bad_response``: anything else (a reply the client could not understand).
    """

    def __init__(self, kind: ErrorKind, message: str, partial_text: str = "", status: int | None = None) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind: ErrorKind = kind
        self.message = message
        self.partial_text = partial_text
        self.status = status


def _is_too_large(message: str) -> bool:
    lowered = message.lower()
    return any(hint in lowered for hint in _TOO_LARGE_HINTS)


def _error_fields(err: openai.APIError) -> tuple[str, str, str]:
    """(code, type, message) of an API error, as lower-case strings ('' when absent)."""
    code = err.code if isinstance(err.code, str) else ""
    etype = err.type if isinstance(err.type, str) else ""
    message = err.message if isinstance(err.message, str) else str(err)
    return code.lower(), etype.lower(), message


@dataclass(frozen=True)
class _ApiFailure:
    """What an API error says about itself: code and type lower-cased, HTTP status, message."""

    code: str
    etype: str
    status: int | None
    message: str


def _is_quota(f: _ApiFailure) -> bool:
    return "insufficient_quota" in (f.code, f.etype)


def _is_unknown_model(f: _ApiFailure) -> bool:
    return f.code == "model_not_found" or f.status == 404


def _is_auth(f: _ApiFailure) -> bool:
    return f.status in (401, 403) or f.code == "invalid_api_key"


def _is_too_large_request(f: _ApiFailure) -> bool:
    if f.code == "context_length_exceeded" or f.status == 413:
        return True
    return f.status in (400, 422, None) and _is_too_large(f.message)


def _is_rate_limited(f: _ApiFailure) -> bool:
    return f.status == 429 or f.code == "rate_limit_exceeded"


def _is_provider_down(f: _ApiFailure) -> bool:
    # No status: an error event inside a stream, which is the provider failing.
    return f.status is None or f.status >= 500 or f.status in (408, 409)


# First match wins: quota before rate limits (both are 429), the model before auth (a 404).
_API_ERROR_KINDS: tuple[tuple[ErrorKind, Callable[[_ApiFailure], bool]], ...] = (
    ("quota", _is_quota),
    ("unknown_model", _is_unknown_model),
    ("auth", _is_auth),
    ("too_large", _is_too_large_request),
    ("rate_limited", _is_rate_limited),
    ("provider_down", _is_provider_down),
)


def _classify_api_error(err: openai.APIError, status: int | None) -> ModelError:
    code, etype, message = _error_fields(err)
    failure = _ApiFailure(code, etype, status, message)
    for kind, matches in _API_ERROR_KINDS:
        if matches(failure):
            return ModelError(kind, message, status=status)
    return ModelError("bad_response", message, status=status)


def classify(err: BaseException, partial_text: str = "") -> ModelError:
    """The :class:`ModelError` for an exception raised by the openai library (or a chunk timeout).

    Once text has been streamed, every failure is ``interrupted`` so that the caller keeps
    (and marks) the partial answer.
    """
    if isinstance(err, ModelError):
        return err
    status = err.status_code if isinstance(err, openai.APIStatusError) else None
    timed_out = isinstance(err, TimeoutError | openai.APITimeoutError)
    if partial_text:
        reason = "timed out" if timed_out else str(err)
        return ModelError("interrupted", f"the answer broke off: {reason}", partial_text, status)
    if timed_out:
        return ModelError("provider_down", "the model did not answer in time", status=status)
    if isinstance(err, openai.APIConnectionError):
        return ModelError("provider_down", f"cannot reach the model provider: {err}")
    if isinstance(err, openai.APIError):
        return _classify_api_error(err, status)
    return ModelError("bad_response", f"{type(err).__name__}: {err}", status=status)
