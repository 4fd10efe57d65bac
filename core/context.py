"""Build the messages sent to the model, trimmed to its context window by whole turns.

A turn is one user message and the answer to it. When the history does not fit the model's
window minus the room kept for the reply, the oldest turns are dropped first, whole, so the
model never sees an answer without its question. The newest user message is always kept; if it
alone does not fit, :class:`ContextTooLarge` tells the caller to say so to the person.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.catalogue import ModelInfo
from core.tokens import counter_for

Counter = Callable[[Sequence[Mapping[str, Any]]], int]
"""Counts the prompt tokens of a list of chat messages (see :func:`core.tokens.count_message_tokens`)."""


@dataclass(frozen=True)
class ChatTurn:
    """One user message and, once it exists, the assistant's answer to it."""

    user: str
    assistant: str | None = None

    def messages(self) -> list[dict[str, str]]:
        """The chat messages of this turn, in order."""
        # An answer with no question before it (an imported greeting) goes alone: some
        # providers reject an empty user message.
        out = [{"role": "user", "content": self.user}] if self.user or self.assistant is None else []
        if self.assistant is not None:
            out.append({"role": "assistant", "content": self.assistant})
        return out


class ContextTooLarge(Exception):
    """The newest message (with the system prompt) does not fit the model's window on its own."""

    def __init__(self, needed: int, available: int) -> None:
        super().__init__(f"the message needs {needed} tokens but only {available} are available")
        self.needed = needed
        self.available = available


def dated_runs(messages: Iterable[tuple[str, str, float]]) -> list[tuple[str, str]]:
    """``(role, content)`` pairs where a message that continues its sender's run on a later day says so.

    Strict templates need one message per role in a row, so runs are joined (see
    :func:`turns_from_history`); an imported WhatsApp chat often has such runs days apart, and
    joined silently they would read as one message. A run is joined as said within one day; a
    message from a later day starts with its date (``[2026-03-09]``), so the model sees the gap.
    """
    out: list[tuple[str, str]] = []
    previous: tuple[str, dt.date] | None = None
    for role, content, at in messages:
        day = dt.datetime.fromtimestamp(at, dt.UTC).date()
        if previous is not None and previous[0] == role and previous[1] != day:
            content = f"[{day.isoformat()}]\n{content}"
        out.append((role, content))
        previous = (role, day)
    return out


CUT_OFF_NOTE = "[This answer was cut off here: the person saw only this part.]"
UNDELIVERED_NOTE = "[This answer never reached the person: they have not seen it.]"


def as_seen(content: str, status: str, delivered: bool = True) -> str:
    """An answer as the model should read it back: marked when the person did not see it whole.

    ``status`` is the stored message's (``interrupted`` and ``cancelled`` answers were cut off);
    ``delivered`` is False for an answer that is stored but never reached the person. Other
    messages pass unchanged.
    """
    if not delivered:
        return f"{content}\n\n{UNDELIVERED_NOTE}"
    if status in ("interrupted", "cancelled"):
        return f"{content}\n\n{CUT_OFF_NOTE}"
    return content


def turns_from_history(messages: Iterable[tuple[str, str]]) -> list[ChatTurn]:
    """Pair ``(role, content)`` history into turns.

    Consecutive user messages are joined (with a blank line) into one turn, an assistant
    message closes the turn it answers, consecutive assistant messages (common in an imported
    WhatsApp chat) are joined into one answer, and an assistant message with no question before
    it (such as a greeting) is kept as a turn with an empty user text. System messages are
    skipped: the system prompt is passed to :func:`fit_context` separately.
    """
    turns: list[ChatTurn] = []
    pending: list[str] = []
    for role, content in messages:
        if role == "user":
            pending.append(content)
        elif role == "assistant" and not pending and turns and turns[-1].assistant is not None:
            # Strict chat templates reject two assistant messages in a row: one answer it is.
            turns[-1] = ChatTurn(turns[-1].user, f"{turns[-1].assistant}\n\n{content}")
        elif role == "assistant":
            turns.append(ChatTurn(user="\n\n".join(pending), assistant=content))
            pending = []
    if pending:
        turns.append(ChatTurn(user="\n\n".join(pending)))
    return turns


def fit_context(
    system: str,
    turns: Sequence[ChatTurn],
    model: ModelInfo,
    reply_budget: int,
    count: Counter | None = None,
) -> list[dict[str, str]]:
    """The messages for the model: the system prompt, then as many of the newest turns as fit.

    The budget is ``model.context_window - reply_budget`` tokens, counted with ``count``
    (by default :func:`core.tokens.count_message_tokens` for ``model.name``). The result is
    the system message (left out when ``system`` is empty) followed by a suffix of ``turns``,
    in order. The last turn is always included; raises :class:`ContextTooLarge` when even it
    does not fit, and ValueError when ``turns`` is empty.
    """
    if not turns:
        raise ValueError("fit_context needs at least one turn (the newest user message)")
    counter = count if count is not None else counter_for(model.name)
    available = model.context_window - max(reply_budget, 0)
    head = [{"role": "system", "content": system}] if system else []

    # Count the whole candidate each time rather than summing per-turn counts, so that a
    # counter with fixed overheads (the reply primer) is charged exactly once. Binary search
    # over how many turns to keep: the count only grows as older turns are added.
    def messages_keeping(k: int) -> list[dict[str, str]]:
        out = list(head)
        for turn in turns[len(turns) - k :]:
            out.extend(turn.messages())
        return out

    needed = counter(messages_keeping(1))
    if needed > available:
        raise ContextTooLarge(needed, available)
    lo, hi = 1, len(turns)  # invariant: keeping lo turns fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if counter(messages_keeping(mid)) <= available:
            lo = mid
        else:
            hi = mid - 1
    return messages_keeping(lo)


EARLIER_ANSWER = "Earlier in this conversation you wrote:"
"""Introduces an answer that has no question before it, when it is folded into the system prompt."""


def alternate(messages: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """The same conversation with roles strictly alternating, as strict chat templates demand.

    llama.cpp ``--jinja``, vLLM and many Gemma and Mistral templates raise unless the messages are
    one optional system message, then user, assistant, user, ... . So: every system message is
    joined into one, first; runs of one role are joined with a blank line; and an answer that
    opens the conversation (an imported greeting, or the oldest kept turn) is folded into the
    system message, since no template accepts an assistant message before the first user one.
    """
    systems = [m["content"] for m in messages if m["role"] == "system" and m["content"]]
    body: list[dict[str, str]] = []
    for m in messages:
        if m["role"] == "system":
            continue
        if body and body[-1]["role"] == m["role"]:
            body[-1] = {"role": m["role"], "content": f"{body[-1]['content']}\n\n{m['content']}"}
        else:
            body.append({"role": m["role"], "content": m["content"]})
    if body and body[0]["role"] == "assistant" and len(body) > 1:
        systems.append(f"{EARLIER_ANSWER}\n{body.pop(0)['content']}")
    head = [{"role": "system", "content": "\n\n".join(systems)}] if systems else []
    return head + body


def build_context(system: str, turns: Sequence[ChatTurn], model: ModelInfo, reply_budget: int) -> list[dict[str, str]]:
    """:func:`fit_context`, then :func:`alternate`: what is sent is what was counted (with the
    model's own token counter)."""
    counter = counter_for(model.name)
    return alternate(fit_context(system, turns, model, reply_budget, lambda ms: counter(alternate(ms))))
