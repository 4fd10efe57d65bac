"""Whether a message whose sending was cut short by a crash reached Telegram, asked without a resend.

The Bot API has no idempotent send: a ``sendMessage`` that Telegram accepted just before the
process died, before the bot recorded it, is sent again by the restart unless the restart can
tell that it arrived. It can, with an edit that changes nothing: ``editMessageText`` with the
part's exact text and markup answers "message is not modified" for the bot's own message with
that content, "message to edit not found" for an id not in the chat, and "message can't be
edited" for someone else's (telegram-bot-api ``Client.cpp``: ``check_message`` looks the id up in
that chat first; TDLib refuses the edit of another's message; the server refuses an edit to the
same content with ``MESSAGE_NOT_MODIFIED``).

Where to look: the durable mark written just before the send (:func:`sending_mark`) names the
lowest id the message could have, ``after``: the person's message and every message this
process knew in the chat. Private chats and basic groups take ids from one counter of the bot's
account, shared by all of them, so the message is at some id above ``after``, between the ids
other chats got. Every message the restarted process itself sends in those chats was created
after the crash, so its id (:meth:`MessageIds.witness`) bounds the search from above: if the
message is not found below it, it never arrived. Until this process has sent anything, ids seen
in updates are searched, and after ``patience`` seconds without a witness (an idle bot, where
nothing but this message can have taken ids) ``slack`` more.

Why the probe never changes another message: sends in a chat follow its line (one answer at a
time), the mark is written after every earlier message of the chat was sent and before this one,
and alerts to the chat wait for the same lock (:meth:`MessageIds.lock`). So the first bot
message above ``after`` in the chat is this one, and the search stops there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from telegram import Bot, InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import BadRequest, RetryAfter, TelegramError

from bots.telegram.render import visible_text

log = logging.getLogger(__name__)

MARK = "sending"


@dataclass(frozen=True)
class Sending:
    """A durable mark: event ``event`` of the reply, part ``part`` of it, was being sent; the
    message has an id above ``after`` if it arrived."""

    event: int
    part: int
    after: int

    def __str__(self) -> str:
        return f"{MARK}:{self.event}:{self.part}:{self.after}"

    @staticmethod
    def parse(ref: str | None) -> Sending | None:
        """The mark ``ref`` names (None: not a mark of this kind)."""
        if not ref or not ref.startswith(MARK + ":"):
            return None
        try:
            event, part, after = (int(x) for x in ref.split(":")[1:4])
        except ValueError:
            return None
        return Sending(event, part, after)


def sending_mark(event: int, part: int, after: int) -> str:
    """The ref recorded (durably) just before part ``part`` of event ``event`` is sent."""
    return str(Sending(event, part, after))


def shares_account_ids(chat_id: int) -> bool:
    """Private chats and basic groups number messages from the bot account's one counter;
    supergroups and channels (ids starting -100) have their own."""
    return chat_id > 0 or not str(chat_id).startswith("-100")


def box(chat_id: int) -> int:
    """Which counter numbers the chat's messages: 0 for the account's, else the chat's own."""
    return 0 if shares_account_ids(chat_id) else chat_id


class MessageIds:
    """What this process knows of message ids: the newest per chat, and the witness."""

    def __init__(self) -> None:
        self.in_chat: dict[int, int] = {}
        self.seen = 0  # the newest id seen in the account's chats (updates included)
        self._own: dict[int, list[tuple[float, int]]] = {}  # box -> (when its request started, id)
        self._first: dict[int, int] = {}  # box -> the first id this process got for its own message
        self._locks: dict[int, asyncio.Lock] = {}
        self._moved = asyncio.Event()

    def saw(self, chat_id: int, message_id: int, *, sent_at: float | None = None) -> None:
        """A message ``message_id`` exists in ``chat_id``; ``sent_at``: this process sent it, its
        request having started then (``time.monotonic()``)."""
        if message_id <= 0:
            return
        self.in_chat[chat_id] = max(self.in_chat.get(chat_id, 0), message_id)
        if shares_account_ids(chat_id):
            self.seen = max(self.seen, message_id)
        if sent_at is not None:
            self._first.setdefault(box(chat_id), message_id)
            own = self._own.setdefault(box(chat_id), [])
            own.append((sent_at, message_id))
            del own[:-64]
        self._moved.set()

    def witness(self, chat_id: int, since: float) -> int | None:
        """The lowest id of an own message numbered like ``chat_id``'s whose request started after
        ``since``: it was created after anything sent before then."""
        later = [i for at, i in self._own.get(box(chat_id), []) if at >= since]
        return min(later) if later else None

    def floor(self, chat_id: int, question: int | None) -> int:
        """The lowest id a message sent to the chat now can be above: the person's message, what
        this process saw in the chat, and its own first message in the chat's counter (later than
        anything an earlier, crashed run sent, such as the chat's previous answer)."""
        return max(question or 0, self.in_chat.get(chat_id, 0), self._first.get(box(chat_id), 0))

    def lock(self, chat_id: int) -> asyncio.Lock:
        """Held from a send's mark until its id is known; alerts to the chat wait for it."""
        return self._locks.setdefault(chat_id, asyncio.Lock())

    async def moved(self, within: float) -> None:
        """Wait until a new id is seen (at most ``within`` seconds)."""
        self._moved.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._moved.wait(), within)


@dataclass(frozen=True)
class Search:
    """How long to wait for a witness, and how far past the ids seen to look without one."""

    patience: float = 10.0
    slack: int = 32


async def find_sent(
    bot: Bot,
    chat_id: int,
    html_part: str,
    markup: InlineKeyboardMarkup | None,
    after: int,
    ids: MessageIds,
    search: Search,
    upto: int | None = None,
) -> int | None:
    """The id of the bot's message in ``chat_id`` above ``after`` (below ``upto``, when known) that
    shows ``html_part``, or None."""
    x = after + 1
    started = time.monotonic()
    while True:
        bound = upto if upto is not None else ids.witness(chat_id, started)
        if bound is not None:
            if x >= bound:
                return None
        elif x > (ids.seen if shares_account_ids(chat_id) else ids.in_chat.get(chat_id, 0)):
            if time.monotonic() - started < search.patience:
                await ids.moved(max(0.05, search.patience - (time.monotonic() - started)))
                continue
            if x > max(ids.seen, ids.in_chat.get(chat_id, 0)) + search.slack:
                return None
        found = await _probe(bot, chat_id, x, html_part, markup)
        if found:
            return x
        x += 1


async def _probe(bot: Bot, chat_id: int, message_id: int, html_part: str, markup: InlineKeyboardMarkup | None) -> bool:
    """Whether ``message_id`` is the bot's message showing ``html_part`` (an edit that changes nothing)."""
    from bots.telegram.send import retry_seconds  # send.py keeps its ids here: imported late

    text = html_part
    mode_now: str | None = ParseMode.HTML
    for _ in range(20):
        try:
            await bot.edit_message_text(
                text, chat_id=chat_id, message_id=message_id, parse_mode=mode_now, reply_markup=markup
            )
        except RetryAfter as exc:
            await asyncio.sleep(retry_seconds(exc))
            continue
        except BadRequest as exc:
            words = exc.message.lower()
            if "not modified" in words:
                return True
            if "can't parse entities" in words and mode_now is not None:
                text, mode_now = visible_text(html_part), None  # it went out as plain text
                continue
            if "not found" in words or "can't be edited" in words:
                return False
            log.info("probing message %s in chat %s: %s", message_id, chat_id, exc.message)
            return False
        except TelegramError as exc:
            log.info("probing message %s in chat %s failed (%s); again", message_id, chat_id, exc.message)
            await asyncio.sleep(1.0)
            continue
        # The edit went through: a message of the bot's above the mark that showed something
        # else — by the line's order, this one, sent as plain text (refused as HTML); it shows
        # the part now.
        log.warning("probe in chat %s changed message %s: taken as the one sent", chat_id, message_id)
        return True
    return False
