"""Context fitting: whole turns dropped oldest first, the newest message always kept."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.catalogue import ModelInfo
from core.context import (
    CUT_OFF_NOTE,
    UNDELIVERED_NOTE,
    ChatTurn,
    ContextTooLarge,
    as_seen,
    fit_context,
    turns_from_history,
)
from core.tokens import count_message_tokens


def words(messages: Sequence[Mapping[str, Any]]) -> int:
    """A simple, exact counter for tests: one token per word, one per message, one for the primer."""
    return 1 + sum(1 + len(str(m["content"]).split()) for m in messages)


def model(window: int) -> ModelInfo:
    return ModelInfo("test-model", context_window=window)


T1 = ChatTurn("one two", "three four")  # 2 messages, 4 words: 6 tokens
T2 = ChatTurn("five six", "seven eight")  # 6 tokens
NEW = ChatTurn("nine ten")  # 3 tokens
SYSTEM = "be brief"  # 3 tokens

# primer 1 + system 3 = 4; + NEW = 7; + T2 = 13; + T1 = 19


@pytest.mark.parametrize(
    ("window", "reply_budget", "kept"),
    [
        (100, 0, [T1, T2, NEW]),
        (19, 0, [T1, T2, NEW]),
        (18, 0, [T2, NEW]),
        (13, 0, [T2, NEW]),
        (12, 0, [NEW]),
        (7, 0, [NEW]),
        (29, 10, [T1, T2, NEW]),
        (28, 10, [T2, NEW]),
        (17, 10, [NEW]),
    ],
)
def test_oldest_whole_turns_are_dropped_first(window: int, reply_budget: int, kept: list[ChatTurn]) -> None:
    messages = fit_context(SYSTEM, [T1, T2, NEW], model(window), reply_budget, count=words)
    expected = [{"role": "system", "content": SYSTEM}]
    for turn in kept:
        expected.extend(turn.messages())
    assert messages == expected


@pytest.mark.parametrize(("window", "reply_budget"), [(6, 0), (16, 10), (100, 200)])
def test_the_newest_message_alone_too_large_is_reported(window: int, reply_budget: int) -> None:
    with pytest.raises(ContextTooLarge) as info:
        fit_context(SYSTEM, [T1, T2, NEW], model(window), reply_budget, count=words)
    assert info.value.needed == 7
    assert info.value.available == window - reply_budget


def test_an_empty_system_prompt_is_left_out() -> None:
    assert fit_context("", [NEW], model(100), 0, count=words) == [{"role": "user", "content": "nine ten"}]


def test_no_turns_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        fit_context(SYSTEM, [], model(100), 0, count=words)


def test_the_default_counter_uses_the_model_tokenizer() -> None:
    info = ModelInfo("gpt-4o", context_window=100)
    messages = fit_context("You are Ferry.", [T1, T2, NEW], info, 0)
    assert count_message_tokens("gpt-4o", messages) <= 100
    assert len(messages) == 6
    small = ModelInfo("gpt-4o", context_window=count_message_tokens("gpt-4o", messages) - 1)
    assert len(fit_context("You are Ferry.", [T1, T2, NEW], small, 0)) == 4


@pytest.mark.parametrize(
    ("history", "turns"),
    [
        ([], []),
        ([("user", "hi")], [ChatTurn("hi")]),
        ([("user", "hi"), ("assistant", "hello")], [ChatTurn("hi", "hello")]),
        ([("user", "a"), ("user", "b"), ("assistant", "c")], [ChatTurn("a\n\nb", "c")]),
        ([("assistant", "welcome"), ("user", "hi")], [ChatTurn("", "welcome"), ChatTurn("hi")]),
        (
            [("system", "x"), ("user", "hi"), ("assistant", "yo"), ("user", "again")],
            [ChatTurn("hi", "yo"), ChatTurn("again")],
        ),
    ],
)
def test_turns_from_history(history: list[tuple[str, str]], turns: list[ChatTurn]) -> None:
    assert turns_from_history(history) == turns


texts = st.text(alphabet="ab ", max_size=30)
turn_lists = st.lists(st.builds(ChatTurn, texts, st.one_of(st.none(), texts)), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(system=texts, turns=turn_lists, window=st.integers(1, 200), reply_budget=st.integers(0, 50))
def test_fit_context_properties(system: str, turns: list[ChatTurn], window: int, reply_budget: int) -> None:
    info = model(window)
    try:
        messages = fit_context(system, turns, info, reply_budget, count=words)
    except ContextTooLarge as exc:
        # Only when the system prompt and the newest turn alone do not fit.
        head = [{"role": "system", "content": system}] if system else []
        assert words(head + turns[-1].messages()) > window - reply_budget
        assert exc.needed > exc.available
        return
    # It fits.
    assert words(messages) <= window - reply_budget
    # System first (when given), then a suffix of the turns, in order, ending with the newest.
    body = messages[1:] if system else messages
    if system:
        assert messages[0] == {"role": "system", "content": system}
    kept = len(turns)
    while kept > 0 and [m for t in turns[len(turns) - kept :] for m in t.messages()] != body:
        kept -= 1
    assert kept >= 1, "the result is not a suffix of the turns"
    assert body[-len(turns[-1].messages()) :] == turns[-1].messages()
    # As many turns as fit: one more would not.
    if kept < len(turns):
        one_more = [m for t in turns[len(turns) - kept - 1 :] for m in t.messages()]
        head = [{"role": "system", "content": system}] if system else []
        assert words(head + one_more) > window - reply_budget


@given(turns=turn_lists)
def test_fit_context_never_modifies_its_input(turns: list[ChatTurn]) -> None:
    before = list(turns)
    fit_context("sys", turns, model(10_000), 0, count=words)
    assert turns == before


def test_an_answer_without_a_question_is_sent_without_an_empty_user_message() -> None:
    turns = turns_from_history([("assistant", "Hi! I'm ChatGPT."), ("user", "hello"), ("assistant", "Hey")])
    assert [m for t in turns for m in t.messages()] == [
        {"role": "assistant", "content": "Hi! I'm ChatGPT."},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "Hey"},
    ]


@pytest.mark.parametrize(
    ("status", "delivered", "seen"),
    [
        ("ok", True, "the answer"),
        ("interrupted", True, f"the answer\n\n{CUT_OFF_NOTE}"),
        ("cancelled", True, f"the answer\n\n{CUT_OFF_NOTE}"),
        ("ok", False, f"the answer\n\n{UNDELIVERED_NOTE}"),
        ("interrupted", False, f"the answer\n\n{UNDELIVERED_NOTE}"),
    ],
)
def test_an_answer_goes_back_to_the_model_as_the_person_saw_it(status: str, delivered: bool, seen: str) -> None:
    assert as_seen("the answer", status, delivered) == seen
