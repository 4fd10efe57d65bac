"""Rules the real Bot API enforces that the fake Telegram server applies (kept apart from its wire code).

* **Flood limits** (https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this):
  "avoid sending more than one message per second" in a chat, "your bot will not be able to send
  more than 20 messages per minute to the same group", and "not more than 30 messages per
  second" in bulk; python-telegram-bot mirrors them as ``telegram.constants.FloodLimit``
  (``MESSAGES_PER_MINUTE_PER_GROUP = 20``, ``MESSAGES_PER_SECOND = 30``). Over a limit Telegram
  answers ``429 Too Many Requests: retry after N`` with ``parameters.retry_after``. About 20
  edits a minute per group is the published guidance for edits (grammY's flood docs), so edits
  count toward the group's budget here. :class:`RateLimits` keeps sliding windows; the windows
  are scalable so a test can run the same ratio in seconds.
* **Drafts** (``sendMessageDraft``, Bot API 9.3+; ``shared/research/upstream-behaviour.md``):
  a draft is an ephemeral preview of about 30 seconds that must be followed by
  ``sendMessage``. :class:`DraftClock` notes each time a person was left looking at a lapsed
  draft (the preview vanished before the answer arrived).
* **Privacy mode** (https://core.telegram.org/bots/features#privacy-mode, and BotFather's
  ``/setprivacy``: "'Enable' - your bot will only receive messages that either start with the
  '/' symbol or mention the bot by username"): in a group a bot in privacy mode gets commands,
  replies to its own messages, messages that mention it, and service messages; nothing else.
  :func:`hidden_by_privacy` decides it for one update.
* **Group → supergroup** (https://core.telegram.org/bots/api#message ``migrate_to_chat_id`` /
  ``migrate_from_chat_id``; #responseparameters ``migrate_to_chat_id``: "The group has been
  migrated to a supergroup with the specified identifier"): after the upgrade every call to the
  old id is refused with 400 "Bad Request: group chat was upgraded to a supergroup chat" and
  ``parameters.migrate_to_chat_id``, which python-telegram-bot raises as ``ChatMigrated``.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

GROUP_WINDOW = 60.0
GROUP_MESSAGES = 20
GLOBAL_WINDOW = 1.0
GLOBAL_MESSAGES = 30
DRAFT_LIFETIME = 30.0

# Calls that put a message into a chat (edits count toward a group's budget too).
WRITES = {"sendMessage", "editMessageText", "sendDocument", "sendPhoto", "sendVoice"}
NEW_MESSAGES = {"sendMessage", "sendDocument", "sendPhoto", "sendVoice"}


class TooManyRequests(Exception):
    """Over a flood limit: answer 429 with ``retry_after``."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too Many Requests: retry after {retry_after}")
        self.retry_after = retry_after


@dataclass
class RateLimits:
    """Sliding-window flood limits per group and over all chats; off until :meth:`enable`."""

    group: tuple[int, float] | None = None  # (messages, seconds) per group chat
    overall: tuple[int, float] | None = None  # (new messages, seconds) over every chat
    _groups: dict[int, deque[float]] = field(default_factory=dict)
    _all: deque[float] = field(default_factory=deque)

    def enable(self, scale: float = 1.0) -> None:
        """Telegram's limits, their windows multiplied by ``scale`` (the same ratio, faster)."""
        self.group = (GROUP_MESSAGES, GROUP_WINDOW * scale)
        self.overall = (GLOBAL_MESSAGES, GLOBAL_WINDOW * scale)

    def check(self, method: str, chat_id: int | None) -> None:
        """Count one call; raise :class:`TooManyRequests` (and count nothing) when over a limit."""
        if chat_id is None or method not in WRITES:
            return
        now = time.monotonic()
        windows: list[tuple[deque[float], int, float]] = []
        if self.group is not None and chat_id < 0:
            windows.append((self._groups.setdefault(chat_id, deque()), *self.group))
        if self.overall is not None and method in NEW_MESSAGES:
            windows.append((self._all, *self.overall))
        for times, limit, window in windows:
            while times and times[0] <= now - window:
                times.popleft()
            if len(times) >= limit:
                raise TooManyRequests(max(1, math.ceil(times[0] + window - now)))
        for times, _, _ in windows:
            times.append(now)


@dataclass
class DraftClock:
    """When each private chat's draft was last refreshed, and how often one lapsed on screen."""

    lifetime: float = DRAFT_LIFETIME
    shown_at: dict[int, float] = field(default_factory=dict)
    lapses: dict[int, int] = field(default_factory=dict)

    def _check(self, chat_id: int) -> None:
        at = self.shown_at.get(chat_id)
        if at is not None and time.monotonic() - at > self.lifetime:
            self.lapses[chat_id] = self.lapses.get(chat_id, 0) + 1

    def draft(self, chat_id: int) -> None:
        """A draft was sent: one that had lapsed meanwhile counts, then the clock restarts."""
        self._check(chat_id)
        self.shown_at[chat_id] = time.monotonic()

    def message(self, chat_id: int) -> None:
        """The answer arrived as a message: the draft is replaced (if it had not lapsed before)."""
        self._check(chat_id)
        self.shown_at.pop(chat_id, None)


def hidden_by_privacy(update: dict[str, Any], bot_id: int, username: str) -> bool:
    """Whether Telegram keeps ``update`` from a bot in privacy mode (only group messages can be)."""
    msg = update.get("message")
    if not isinstance(msg, dict) or msg.get("chat", {}).get("type") not in ("group", "supergroup"):
        return False
    text = str(msg.get("text") or msg.get("caption") or "")
    if "text" not in msg and "caption" not in msg and not any(k in msg for k in ("document", "photo", "voice")):
        return False  # a service message
    if text.startswith("/"):
        _, _, to = text.split()[0].partition("@")
        return bool(to) and to.lower() != username.lower()  # "/cmd@other_bot" reaches the other bot only
    reply = msg.get("reply_to_message") or {}
    if (reply.get("from") or {}).get("id") == bot_id and not reply.get("forum_topic_created"):
        return False
    handle = "@" + username.lower()
    for entity in msg.get("entities") or msg.get("caption_entities") or []:
        if entity.get("type") == "text_mention" and (entity.get("user") or {}).get("id") == bot_id:
            return False
        if entity.get("type") == "mention":
            start = _utf16_index(text, int(entity["offset"]))
            end = _utf16_index(text, int(entity["offset"]) + int(entity["length"]))
            if text[start:end].lower() == handle:
                return False
    return True


def _utf16_index(text: str, units: int) -> int:
    """The str index at ``units`` UTF-16 code units into ``text``."""
    count = 0
    for i, ch in enumerate(text):
        if count >= units:
            return i
        count += 2 if ord(ch) > 0xFFFF else 1
    return len(text)
