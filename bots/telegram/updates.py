"""Raw Bot API updates into python-telegram-bot's ``Update``, one at a time, never fatally.

python-telegram-bot parses a whole ``getUpdates`` batch at once, and an update it cannot parse
(a poll as an older self-hosted Bot API server sends it, without fields Bot API 9.6 made
required) fails the batch: its Updater logs the batch whole at CRITICAL (names, texts) and
fetches it again forever. Here each update is parsed alone:

* text that no encoder accepts (a lone UTF-16 surrogate, which JSON carries and Python holds)
  is replaced with U+FFFD before parsing — one UTF-16 unit for one, so entity offsets still
  fit — because PTB's ``parse_entities`` encodes the text and would raise on it;
* an update that still cannot be parsed is *poison*: one log line names its id and the
  exception's type (never its content), and what can be read of it — the message's plain
  fields: who, where, the text — is parsed again on its own, so the person still gets an answer
  when they wrote something; otherwise the update is skipped.
"""

from __future__ import annotations

import logging
from typing import Any

from telegram import Bot, Update

from bots.intake import cleaned
from bots.logs import Throttled

log = logging.getLogger(__name__)

_MESSAGE_KINDS = ("message", "edited_message", "channel_post", "edited_channel_post")
_READABLE = (
    "message_id", "from", "sender_chat", "chat", "date", "message_thread_id", "is_topic_message",
    "text", "entities", "caption", "caption_entities",
)  # fmt: skip
"""The fields of a message kept when the rest of it cannot be parsed: enough to answer its text."""


def update_id_of(raw: object) -> int | None:
    """The ``update_id`` of a raw update, if it has a usable one."""
    if isinstance(raw, dict):
        uid = raw.get("update_id")
        if isinstance(uid, int) and not isinstance(uid, bool):
            return uid
    return None


class UpdateParser:
    """Parses raw updates one by one; poison is logged (rate-limited) and salvaged or skipped."""

    def __init__(self, bot: Bot, throttled: Throttled | None = None) -> None:
        self.bot = bot
        self.throttled = throttled or Throttled(log, interval=10.0)

    def parse(self, raw: object) -> Update | None:
        """The update, or what can be read of it, or None (skipped, one log line without content)."""
        uid = update_id_of(raw)
        if uid is None or not isinstance(raw, dict):
            self.throttled(logging.WARNING, "no-id", "Telegram: skipped an update without an update_id")
            return None
        data: dict[str, Any] = cleaned(raw)
        try:
            return Update.de_json(data, self.bot)
        except Exception as exc:  # whatever PTB raises on a shape it does not know
            reason = type(exc).__name__
        salvaged = self._readable_part(data)
        if salvaged is not None:
            try:
                update = Update.de_json(salvaged, self.bot)
            except Exception:
                update = None
            if update is not None and update.effective_message is not None:
                self.throttled(
                    logging.WARNING, "salvaged",
                    "Telegram: update %s could not be parsed whole (%s); answering what can be read of it",
                    uid, reason,
                )  # fmt: skip
                return update
        self.throttled(logging.WARNING, "poison", "Telegram: skipped update %s that cannot be parsed (%s)", uid, reason)
        return None

    @staticmethod
    def _readable_part(raw: dict[str, Any]) -> dict[str, Any] | None:
        for kind in _MESSAGE_KINDS:
            message = raw.get(kind)
            if isinstance(message, dict):
                if not (message.get("text") or message.get("caption")):
                    return None  # nothing a person wrote to answer (a poll, a sticker…)
                kept = {k: v for k, v in message.items() if k in _READABLE}
                return {"update_id": raw["update_id"], kind: kept}
        return None
