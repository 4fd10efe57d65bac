"""A fake Telegram Bot API server that speaks the real wire protocol on 127.0.0.1.

It follows ``shared/research/protocols.md`` §1: every method is ``POST ROOT/bot<token>/METHOD``
with a form-urlencoded, multipart or JSON body whose non-string values are JSON-encoded strings;
files are served at ``GET ROOT/file/bot<token>/PATH``. Replies use Telegram's envelope
(``{"ok": true, "result": …}`` or ``{"ok": false, "error_code": N, "description": …}``).

It is strict where bots usually go wrong: HTML is parsed the way Telegram does (only Telegram's
tags, properly nested, the visible text measured in UTF-16 units), identical edits are refused
with "message is not modified", and flood control (429 ``retry_after``) or entity refusals can
be scripted for the next calls of a method.

Updates are delivered as Telegram does (https://core.telegram.org/bots/api#getupdates and
#setwebhook; ``shared/research/protocols.md`` §1.4): an update stays queued until a later
``getUpdates`` call's ``offset`` passes it ("an update is considered confirmed as soon as
getUpdates is called with an offset higher than its update_id"), so a bot that dies before its
next poll gets the same updates again; long polling holds the request up to ``timeout`` seconds;
``getUpdates`` is refused with 409 while a webhook is set; a webhook gets each update by POST and
it stays pending, retried with growing pauses, until the bot answers 2xx.

Test API (not part of the Bot API): ``push_*`` helpers queue updates (``push_edited_text`` an
``edited_message``, ``push_poison_poll`` one python-telegram-bot 22.8 cannot parse),
``stall`` answers a call late (it was carried out: a request that timed out may have arrived),
``file_rate`` serves files at that many bytes a second (a file is a download of up to 20 MB from
Telegram's file servers, https://core.telegram.org/bots/api#getfile, and takes its time),
``sent[chat_id]`` holds what the bot did in each chat (``log(chat_id).texts`` what the person
sees now), ``pending_updates`` what Telegram still holds, ``wait_until(predicate)`` waits.

Telegram's rules live in ``tests/fakes/telegram_rules.py`` (with their upstream sources) and are
switched on per test: ``limits.enable(scale)`` (429 over 20 messages a minute per group or 30 a
second overall), ``drafts.lifetime`` / ``drafts.lapses`` (a draft lapses after 30 s),
``privacy_mode`` (groups deliver only what is meant for the bot; ``withheld`` the rest), and
``basic_group`` / ``migrate`` (a group upgraded to a supergroup; its old id then answers 400 with
``migrate_to_chat_id``).
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout, web

from tests.fakes.telegram_rules import DraftClock, RateLimits, TooManyRequests, hidden_by_privacy

JSONDict = dict[str, Any]

BOT_ID = 123456789
BOT_USERNAME = "test_bot"
TOKEN = f"{BOT_ID}:TESTTOKEN"
MAX_TEXT = 4096

# Telegram's HTML: https://core.telegram.org/bots/api#html-style
ALLOWED_TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler",
    "a", "code", "pre", "blockquote", "tg-emoji", "tg-time",
}  # fmt: skip
NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


class EntityError(ValueError):
    """The text is not valid Telegram HTML; the message is Telegram's own wording."""


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit Telegram counts in."""
    return len(text.encode("utf-16-le")) // 2


_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^<>]*)?)\s*(/?)>")
_ENTITY_RE = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]+);")


def parse_html(text: str) -> str:
    """Return the visible text of Telegram HTML, or raise :class:`EntityError` as Telegram would."""
    out: list[str] = []
    stack: list[tuple[str, int]] = []
    i = 0
    n = len(text)

    def byte_offset(pos: int) -> int:
        return len(text[:pos].encode("utf-8"))

    while i < n:
        ch = text[i]
        if ch == "<":
            m = _TAG_RE.match(text, i)
            if m is None:
                raise EntityError(f"Unclosed start tag at byte offset {byte_offset(i)}")
            closing, name, attrs, selfclose = m.group(1), m.group(2).lower(), m.group(3), m.group(4)
            if name not in ALLOWED_TAGS:
                kind = "end" if closing else "start"
                raise EntityError(f'Unsupported {kind} tag "{name}" at byte offset {byte_offset(i)}')
            if closing:
                if not stack or stack[-1][0] != name:
                    raise EntityError(
                        f'Unmatched end tag at byte offset {byte_offset(i)}, expected "</{stack[-1][0]}>", '
                        f'found "</{name}>"'
                        if stack
                        else f"Unexpected end tag at byte offset {byte_offset(i)}"
                    )
                stack.pop()
            elif not selfclose:
                if name == "a" and "href" not in attrs:
                    pass  # Telegram accepts <a> without href and shows plain text
                if (
                    stack
                    and stack[-1][0] in ("code", "pre")
                    and not (stack[-1][0] == "pre" and name == "code")
                ):
                    raise EntityError(
                        f"Can't parse entities: entities can't be nested in code at byte offset "
                        f"{byte_offset(i)}"
                    )
                stack.append((name, byte_offset(i)))
            i = m.end()
        elif ch == "&":
            m = _ENTITY_RE.match(text, i)
            if m is None:
                out.append("&")
                i += 1
                continue
            ent = m.group(1)
            if ent.startswith("#"):
                code = int(ent[2:], 16) if ent[1] in "xX" else int(ent[1:])
                try:
                    out.append(chr(code))
                except (ValueError, OverflowError) as exc:
                    raise EntityError(f"Invalid numeric entity at byte offset {byte_offset(i)}") from exc
            elif ent in NAMED_ENTITIES:
                out.append(NAMED_ENTITIES[ent])
            else:
                raise EntityError(f'Unsupported HTML entity "&{ent};" at byte offset {byte_offset(i)}')
            i = m.end()
        elif ch == ">":
            # Telegram tolerates a bare ">" in text.
            out.append(ch)
            i += 1
        else:
            out.append(ch)
            i += 1
    if stack:
        name, off = stack[-1]
        raise EntityError(f'Can\'t find end tag corresponding to start tag "{name}" at byte offset {off}')
    return "".join(out)


MAX_ENTITIES_SIZE = 9_500
"""Telegram refuses a message whose entities are too large in total with ENTITIES_TOO_LONG (PTB
shows "Entities_too_long"); the limit is undocumented, about 9,500 characters of entity data
per a TDLib maintainer (tdlib/telegram-bot-api#165). Modelled as the total length of link URLs,
the data that grows without bound (many long links)."""

_HREF_RE = re.compile(r"<a\s[^>]*href\s*=\s*(?:\"([^\"]*)\"|'([^']*)')", re.IGNORECASE)


def entities_size(html_text: str) -> int:
    """The size of a message's entity data as :data:`MAX_ENTITIES_SIZE` measures it."""
    return sum(len(a or b) for a, b in _HREF_RE.findall(html_text))


def visible_text(text: str, parse_mode: str | None) -> str:
    """What the user sees for ``text`` sent with ``parse_mode`` (only HTML and none supported)."""
    if parse_mode is None or parse_mode == "":
        return text
    if parse_mode.upper() == "HTML":
        return parse_html(text)
    raise EntityError(f"unsupported parse_mode {parse_mode!r} in the fake")


class ApiError(Exception):
    """An error envelope to return."""

    def __init__(self, code: int, description: str, parameters: JSONDict | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


@dataclass
class SentMessage:
    """A message the bot sent; ``text`` is what the user sees, ``raw`` what the bot posted."""

    message_id: int
    chat_id: int
    text: str
    raw: str
    parse_mode: str | None
    reply_markup: JSONDict | None = None
    message_thread_id: int | None = None
    reply_to_message_id: int | None = None
    edits: list[str] = field(default_factory=list)
    deleted: bool = False

    @property
    def buttons(self) -> list[list[tuple[str, str]]]:
        """The inline keyboard as rows of (label, callback_data)."""
        if not self.reply_markup:
            return []
        return [
            [(b["text"], b.get("callback_data", "")) for b in row]
            for row in self.reply_markup.get("inline_keyboard", [])
        ]


@dataclass
class Draft:
    """One ``sendMessageDraft`` call."""

    draft_id: int
    text: str
    raw: str
    message_thread_id: int | None


@dataclass
class Document:
    """One ``sendDocument`` upload."""

    filename: str
    data: bytes
    mime_type: str | None
    caption: str | None


@dataclass
class ChatLog:
    """Everything the bot did in one chat, in order."""

    messages: list[SentMessage] = field(default_factory=list)
    drafts: list[Draft] = field(default_factory=list)
    edits: list[tuple[int, str]] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)
    photos: list[Document] = field(default_factory=list)
    voices: list[Document] = field(default_factory=list)
    reactions: list[tuple[int, list[str]]] = field(default_factory=list)

    @property
    def texts(self) -> list[str]:
        """The visible text of every message still in the chat (after edits)."""
        return [m.text for m in self.messages if not m.deleted]


@dataclass
class Call:
    """One recorded Bot API call."""

    method: str
    params: JSONDict
    at: float
    status: int = 200


@dataclass
class _Failure:
    remaining: int
    code: int
    description: str
    parameters: JSONDict | None


class FakeTelegram:
    """The fake Bot API server. ``await start()``, point the bot at ``base_url``/``base_file_url``."""

    def __init__(self, token: str = TOKEN, bot_username: str = BOT_USERNAME) -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.bot_user: JSONDict = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "TestBot",
            "username": bot_username,
        }
        self.calls: list[Call] = []
        self.sent: dict[int, ChatLog] = {}
        self.commands: dict[str | None, list[JSONDict]] = {}
        self.callback_answers: list[JSONDict] = []
        self.webhook: JSONDict | None = None
        self.webhook_deliveries: list[int] = []  # HTTP status of each webhook POST
        self.file_rate: float | None = None  # bytes a second a file download is served at (None: at once)
        self.downloads_in_flight = 0
        self.webhook_retry_delay = 0.05  # first pause before re-posting a refused update; doubles
        self.webhook_retry_cap = 1.0
        self.webhook_max_attempts = 200  # "give up after a reasonable amount of attempts"
        self.webhook_timeout = 10.0  # seconds a POST may take before it counts as failed
        self.webhook_max_connections = 40  # setWebhook's max_connections
        self.webhook_most_in_flight = 0  # the most POSTs that were in flight at once
        self._hook_in_flight = 0
        self._hook_queues: dict[Any, list[JSONDict]] = {}  # per chat, in order (see _deliver)
        self._hook_queued: set[int] = set()
        self._hook_slots = asyncio.Semaphore(40)
        self._updates: list[JSONDict] = []
        self._update_ids = itertools.count(1000)
        self._msg_ids: dict[int, itertools.count[int]] = {}  # a supergroup's own message ids
        self._account_ids = itertools.count(1)  # the bot account's ids: private chats and basic groups
        self._theirs: set[tuple[int, int]] = set()  # (chat, message) written by people, not the bot
        self._messages: dict[tuple[int, int], SentMessage] = {}
        self._chats: dict[int, JSONDict] = {}
        self._files: dict[str, tuple[str, bytes]] = {}
        self._failures: dict[str, list[_Failure]] = {}
        self._stalls: dict[str, list[float]] = {}
        self._lags: dict[str, list[float]] = {}
        self._changed = asyncio.Condition()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self.port = 0
        self.listeners: list[Callable[[Call], None]] = []  # each call carried out, before it is answered
        self.arrivals: list[Callable[[Call], None]] = []  # each call as it arrives, before it is carried out
        # Rules of the real service (tests/fakes/telegram_rules.py cites them):
        self.limits = RateLimits()  # flood limits per group and overall; ``limits.enable(scale)``
        self.drafts = DraftClock()  # drafts lapse after ``drafts.lifetime`` s; ``drafts.lapses``
        self.privacy_mode = False  # BotFather /setprivacy; True: groups deliver only what is meant for the bot
        self.withheld: list[JSONDict] = []  # updates privacy mode kept from the bot
        self.migrated: dict[int, int] = {}  # a group upgraded to a supergroup: old id → new id

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on 127.0.0.1 on a free port."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Release pending long polls and stop listening."""
        self._closing = True
        async with self._changed:
            self._changed.notify_all()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def root(self) -> str:
        """The Bot API server root, as ``TELEGRAM_API_URL`` would name it."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self.root}/file/bot"

    # --- scripting ----------------------------------------------------------------------

    def flood(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with 429 flood control."""
        self._failures.setdefault(method, []).append(
            _Failure(
                times, 429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
            )
        )

    def refuse_entities(self, method: str, times: int = 1) -> None:
        """Answer the next ``times`` formatted calls of ``method`` with "can't parse entities"."""
        self._failures.setdefault(method, []).append(
            _Failure(
                times,
                400,
                "Bad Request: can't parse entities: Can't find end of the entity starting at byte offset 0",
                {"_formatted_only": True},
            )
        )

    def stall(self, method: str, seconds: float, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` are carried out, but answered only after ``seconds``.

        Models a response lost or late on the way back (a slow or broken network, a proxy): the
        message is in the chat although the bot's request timed out. PTB says of its ``TimedOut``
        that the request "may have been processed" (``telegram/error.py``), which is this case.
        """
        self._stalls.setdefault(method, []).extend([seconds] * times)

    def lag(self, method: str, seconds: float, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` arrive ``seconds`` late (slow on the way in):
        the flood limits count them, as Telegram counts a message, when they arrive."""
        self._lags.setdefault(method, []).extend([seconds] * times)

    def fail(self, method: str, code: int, description: str, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with any error."""
        self._failures.setdefault(method, []).append(_Failure(times, code, description, None))

    # --- pushing updates ----------------------------------------------------------------

    def user(self, user_id: int, first_name: str = "Alice", language_code: str | None = "en") -> JSONDict:
        u: JSONDict = {"id": user_id, "is_bot": False, "first_name": first_name}
        if language_code:
            u["language_code"] = language_code
        return u

    def _next_msg_id(self, chat_id: int) -> int:
        """The id of a new message in ``chat_id``, as the bot sees it.

        Private chats and basic groups take their ids from one counter of the bot's account, so
        ids in one private chat skip the ones given meanwhile in the others; a supergroup (or
        channel) numbers its messages itself. MTProto keeps private chats and basic groups in the
        account's one "common message box" (one ``pts`` sequence) and each channel or supergroup
        in a box of its own (https://core.telegram.org/api/updates); message ids follow the box.
        """
        if self._chat(chat_id)["type"] in ("private", "group"):
            return next(self._account_ids)
        return next(self._msg_ids.setdefault(chat_id, itertools.count(1)))

    def _chat(self, chat_id: int, title: str | None = None, forum: bool = False) -> JSONDict:
        if chat_id in self._chats:
            return self._chats[chat_id]
        if chat_id > 0:
            chat: JSONDict = {"id": chat_id, "type": "private", "first_name": f"User{chat_id}"}
        else:
            chat = {"id": chat_id, "type": "supergroup", "title": title or f"Group{chat_id}"}
            if forum:
                chat["is_forum"] = True
        self._chats[chat_id] = chat
        return chat

    def _message(self, chat_id: int, from_user: JSONDict, **extra: Any) -> JSONDict:
        msg: JSONDict = {
            "message_id": self._next_msg_id(chat_id),
            "date": int(time.time()),
            "from": from_user,
            "chat": self._chat(chat_id),
        }
        msg.update({k: v for k, v in extra.items() if v is not None})
        self._theirs.add((chat_id, int(msg["message_id"])))
        return msg

    def push_update(self, update: JSONDict) -> int:
        """Queue a raw update (``update_id`` is assigned); returns its update_id.

        In privacy mode a group message not meant for the bot is withheld (never delivered)."""
        update = {"update_id": next(self._update_ids), **update}
        if self.privacy_mode and hidden_by_privacy(update, self.bot_id, str(self.bot_user["username"])):
            self.withheld.append(update)
            return int(update["update_id"])
        self._updates.append(update)
        if self.webhook is not None:
            self._deliver(update)
        else:
            asyncio.get_running_loop().create_task(self._notify())
        return int(update["update_id"])

    @property
    def pending_updates(self) -> list[JSONDict]:
        """Updates Telegram still holds: not yet confirmed by an offset or a 2xx webhook answer."""
        return list(self._updates)

    def basic_group(self, chat_id: int, title: str | None = None) -> None:
        """Make ``chat_id`` a basic group (``type: group``), one that can be upgraded."""
        self._chats[chat_id] = {"id": chat_id, "type": "group", "title": title or f"Group{chat_id}"}

    def migrate(self, old_id: int, user_id: int) -> int:
        """Upgrade a basic group to a supergroup as Telegram does; returns the new id.

        Telegram sends a service message with ``migrate_to_chat_id`` in the old chat and one with
        ``migrate_from_chat_id`` in the new; from then on every call to the old id is refused
        (``telegram_rules`` cites the Bot API).
        """
        new_id = int(f"-100{abs(old_id)}")
        title = self._chat(old_id).get("title")
        self._chats[new_id] = {"id": new_id, "type": "supergroup", "title": title or f"Group{new_id}"}
        self.migrated[old_id] = new_id
        self.push_update({"message": self._message(old_id, self.user(user_id), migrate_to_chat_id=new_id)})
        self.push_update({"message": self._message(new_id, self.user(user_id), migrate_from_chat_id=old_id)})
        return new_id

    def push_edited_text(self, original: JSONDict, text: str) -> JSONDict:
        """Queue an ``edited_message`` update: the person changed the text of ``original``."""
        msg = {**original, "text": text, "edit_date": int(time.time())}
        self.push_update({"edited_message": msg})
        return msg

    def push_poison_poll(self, user_id: int, *, chat_id: int | None = None) -> int:
        """Queue a message with a poll as an older self-hosted Bot API server sends it; returns the update_id.

        The poll lacks ``allows_revoting`` and ``members_only`` and its options lack ``persistent_id``
        (fields Bot API 9.6/10.0 made required). python-telegram-bot 22.8 cannot parse it:
        ``telegram/_poll.py`` ``PollOption.__init__`` raises ``TypeError("`persistent_id` is a
        required argument since Bot API 9.6")`` and ``Poll.__init__`` raises the same for
        ``allows_revoting``, so ``Update.de_json`` (and ``Bot.get_updates``) raises on the batch.
        """
        cid = user_id if chat_id is None else chat_id
        poll = {
            "id": f"poll{next(self._update_ids)}",
            "question": "Lunch?",
            "options": [{"text": "yes", "voter_count": 0}, {"text": "no", "voter_count": 0}],
            "total_voter_count": 0,
            "is_closed": False,
            "is_anonymous": True,
            "type": "regular",
            "allows_multiple_answers": False,
        }
        return self.push_update({"message": self._message(cid, self.user(user_id), poll=poll)})

    def push_text(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        language_code: str | None = "en",
        first_name: str = "Alice",
        entities: list[JSONDict] | None = None,
        message_thread_id: int | None = None,
        reply_to: JSONDict | None = None,
    ) -> JSONDict:
        """Queue a text message from a user (private chat unless ``chat_id`` is a group's)."""
        cid = user_id if chat_id is None else chat_id
        if entities is None and text.startswith("/"):
            cmd = text.split()[0]
            entities = [{"type": "bot_command", "offset": 0, "length": utf16_len(cmd)}]
        extra: JSONDict = {"text": text, "entities": entities or None, "reply_to_message": reply_to}
        if message_thread_id is not None:
            extra["message_thread_id"] = message_thread_id
            extra["is_topic_message"] = True
            self._chat(cid, forum=True)
        msg = self._message(cid, self.user(user_id, first_name, language_code), **extra)
        self.push_update({"message": msg})
        return msg

    def push_group_text(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        *,
        mention: bool = False,
        reply_to_bot: SentMessage | None = None,
        message_thread_id: int | None = None,
        language_code: str | None = "en",
    ) -> JSONDict:
        """Queue a group message; ``mention`` prefixes ``@botname`` with a mention entity."""
        entities: list[JSONDict] | None = None
        if mention:
            handle = "@" + str(self.bot_user["username"])
            text = f"{handle} {text}"
            entities = [{"type": "mention", "offset": 0, "length": utf16_len(handle)}]
        elif text.startswith("/"):
            cmd = text.split()[0]
            entities = [{"type": "bot_command", "offset": 0, "length": utf16_len(cmd)}]
        reply: JSONDict | None = None
        self._chat(chat_id, forum=message_thread_id is not None)
        if reply_to_bot is not None:
            reply = {
                "message_id": reply_to_bot.message_id,
                "date": int(time.time()),
                "from": self.bot_user,
                "chat": self._chat(chat_id),
                "text": reply_to_bot.text,
            }
            if reply_to_bot.message_thread_id is not None:
                reply["message_thread_id"] = reply_to_bot.message_thread_id
                reply["is_topic_message"] = True
        elif message_thread_id is not None:
            # In a forum topic every message replies to the topic's service message.
            reply = {
                "message_id": message_thread_id,
                "date": int(time.time()),
                "from": self.user(user_id),
                "chat": self._chat(chat_id),
                "message_thread_id": message_thread_id,
                "forum_topic_created": {"name": "Topic", "icon_color": 7322096},
                "is_topic_message": True,
            }
        return self.push_text(
            user_id,
            text,
            chat_id=chat_id,
            language_code=language_code,
            entities=entities or [],
            message_thread_id=message_thread_id,
            reply_to=reply,
        )

    def push_callback(self, user_id: int, data: str, message: SentMessage) -> str:
        """Queue a button press on one of the bot's messages; returns the callback query id."""
        qid = f"cq{next(self._update_ids)}"
        msg: JSONDict = {
            "message_id": message.message_id,
            "date": int(time.time()),
            "chat": self._chat(message.chat_id),
            "from": self.bot_user,
            "text": message.text,
        }
        if message.message_thread_id is not None:
            msg["message_thread_id"] = message.message_thread_id
        self.push_update(
            {
                "callback_query": {
                    "id": qid,
                    "chat_instance": "-123456",
                    "data": data,
                    "from": self.user(user_id),
                    "message": msg,
                }
            }
        )
        return qid

    def add_file(self, data: bytes, path: str) -> str:
        """Make ``data`` downloadable; returns its file_id."""
        file_id = f"FILE{len(self._files) + 1}"
        self._files[file_id] = (path, data)
        return file_id

    def push_document(
        self,
        user_id: int,
        filename: str,
        data: bytes,
        mime_type: str = "application/pdf",
        caption: str | None = None,
    ) -> JSONDict:
        """Queue a document message whose file can be fetched with getFile."""
        file_id = self.add_file(data, f"documents/{filename}")
        doc = {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_name": filename,
            "mime_type": mime_type,
            "file_size": len(data),
        }
        msg = self._message(user_id, self.user(user_id), document=doc, caption=caption)
        self.push_update({"message": msg})
        return msg

    def push_media(self, user_id: int, kind: str) -> JSONDict:
        """Queue a voice note, photo or sticker (kinds the core answers with a notice)."""
        payload: Any
        if kind == "voice":
            payload = {
                "file_id": self.add_file(b"OggS", "voice/v.oga"),
                "file_unique_id": "v1",
                "duration": 2,
                "mime_type": "audio/ogg",
                "file_size": 4,
            }
        elif kind == "photo":
            photo_id = self.add_file(b"\x89PNG", "photos/p.jpg")
            payload = [
                {"file_id": photo_id, "file_unique_id": "p1", "width": 90, "height": 90, "file_size": 4}
            ]
        elif kind == "sticker":
            payload = {
                "file_id": "STK",
                "file_unique_id": "s1",
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
            }
        else:
            raise ValueError(kind)
        msg = self._message(user_id, self.user(user_id), **{kind: payload})
        self.push_update({"message": msg})
        return msg

    def push_voice(
        self,
        user_id: int,
        data: bytes,
        *,
        kind: str = "voice",
        file_size: int | None = None,
        duration: int = 3,
        caption: str | None = None,
    ) -> JSONDict:
        """Queue a voice note, audio file or round video note (``kind``) whose file getFile serves.

        ``file_size`` is what the update announces (the Bot API's ``file_size``); by default the
        data's length.
        """
        file_id = self.add_file(data, f"{kind}/file_{len(self._files) + 1}")
        payload: JSONDict = {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "duration": duration,
            "file_size": len(data) if file_size is None else file_size,
        }
        if kind == "voice":
            payload["mime_type"] = "audio/ogg"
        elif kind == "audio":
            payload.update(mime_type="audio/mpeg", file_name="song.mp3")
        elif kind == "video_note":
            payload["length"] = 240
        else:
            raise ValueError(kind)
        extra: JSONDict = {"caption": caption} if caption else {}
        msg = self._message(user_id, self.user(user_id), **{kind: payload}, **extra)
        self.push_update({"message": msg})
        return msg

    def push_photo(
        self,
        user_id: int,
        data: bytes,
        *,
        caption: str | None = None,
        media_group_id: str | None = None,
        file_size: int | None = None,
        chat_id: int | None = None,
    ) -> JSONDict:
        """Queue a photo (one of an album with ``media_group_id``); the largest size serves ``data``.

        Like the Bot API, ``photo`` lists the sizes Telegram made, smallest first.
        """
        file_id = self.add_file(data, f"photos/file_{len(self._files) + 1}.jpg")
        thumb_id = self.add_file(data[:64], f"photos/thumb_{len(self._files) + 1}.jpg")
        sizes = [
            {"file_id": thumb_id, "file_unique_id": f"u{thumb_id}", "width": 90, "height": 90, "file_size": 64},
            {
                "file_id": file_id,
                "file_unique_id": f"u{file_id}",
                "width": 1280,
                "height": 960,
                "file_size": len(data) if file_size is None else file_size,
            },
        ]
        extra: JSONDict = {}
        if caption:
            extra["caption"] = caption
        if media_group_id:
            extra["media_group_id"] = media_group_id
        msg = self._message(chat_id or user_id, self.user(user_id), photo=sizes, **extra)
        self.push_update({"message": msg})
        return msg

    # --- observing ----------------------------------------------------------------------

    def log(self, chat_id: int) -> ChatLog:
        """What the bot did in ``chat_id``."""
        return self.sent.setdefault(chat_id, ChatLog())

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    async def wait_until(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        """Wait until ``predicate()`` holds (checked after every call); fail after ``within`` seconds."""

        async def _wait() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        await asyncio.wait_for(_wait(), within)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # --- webhook delivery ---------------------------------------------------------------

    def _deliver(self, update: JSONDict) -> None:
        """Queue ``update`` for the webhook: POSTed until answered 2xx, as Telegram does.

        https://core.telegram.org/bots/api#setwebhook: "In case of an unsuccessful request (a
        request with response HTTP status code different from 2XY), we will repeat the request and
        give up after a reasonable amount of attempts", and ``max_connections`` is "the maximum
        allowed number of simultaneous HTTPS connections to the webhook for update delivery, 1-100.
        Defaults to 40." The update stays pending (and is what ``getUpdates`` returns once the
        webhook is deleted) until a 2xx answer; a POST not answered within ``webhook_timeout``
        counts as failed and is repeated (the bot may well have taken it: the bot must recognise it).

        As the Bot API server does (tdlib/telegram-bot-api ``WebhookActor.cpp``: updates of one
        chat share a queue, whose next update is sent only once the one before it was answered OK
        or dropped), one chat's updates go one at a time and in order, while different chats'
        go side by side over up to ``max_connections`` connections. A failed update waits before
        it is sent again, with pauses that double (Telegram starts at 1 s and caps near a minute;
        here ``webhook_retry_delay`` and ``webhook_retry_cap``, shorter for tests).
        """
        uid = int(update["update_id"])
        if uid in self._hook_queued:
            return
        self._hook_queued.add(uid)
        queue_id = _queue_id(update)
        self._hook_queues.setdefault(queue_id, []).append(update)
        if len(self._hook_queues[queue_id]) == 1:
            asyncio.get_running_loop().create_task(self._send_queue(queue_id))

    async def _send_queue(self, queue_id: Any) -> None:
        queue = self._hook_queues[queue_id]
        try:
            while queue:
                if not await self._post_until_accepted(queue[0]):
                    break  # the webhook is gone: what is left waits for getUpdates or a new webhook
                self._hook_queued.discard(int(queue.pop(0)["update_id"]))
        finally:
            for left in queue:
                self._hook_queued.discard(int(left["update_id"]))
            self._hook_queues.pop(queue_id, None)

    async def _post_until_accepted(self, update: JSONDict) -> bool:
        delay = self.webhook_retry_delay
        for _ in range(self.webhook_max_attempts):
            hook = self.webhook
            if hook is None or self._closing:
                return False
            if update not in self._updates:
                return True
            async with self._hook_slots:
                status = await self._post_once(hook, update)
            if status:
                self.webhook_deliveries.append(status)
            if 200 <= status < 300:
                if update in self._updates:
                    self._updates.remove(update)
                await self._notify()
                return True
            await self._notify()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.webhook_retry_cap)
        return True  # given up: dropped, as Telegram drops it after its attempts

    async def _post_once(self, hook: JSONDict, update: JSONDict) -> int:
        if self._session is None:
            self._session = ClientSession()
        headers = {"Content-Type": "application/json"}
        if hook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook["secret_token"]
        self._hook_in_flight += 1
        self.webhook_most_in_flight = max(self.webhook_most_in_flight, self._hook_in_flight)
        try:
            timeout = ClientTimeout(total=self.webhook_timeout)
            async with self._session.post(hook["url"], data=json.dumps(update), headers=headers, timeout=timeout) as r:
                return r.status
        except (TimeoutError, OSError, ClientError):
            return 0  # nobody listening (the bot is down), the connection broke, or no answer in time
        finally:
            self._hook_in_flight -= 1

    async def deliver_webhook(self, update: JSONDict, secret: str | None) -> int:
        """POST an update to the registered webhook with an explicit secret; returns the status."""
        assert self.webhook is not None
        if self._session is None:
            self._session = ClientSession()
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        update = {"update_id": next(self._update_ids), **update}
        async with self._session.post(self.webhook["url"], data=json.dumps(update), headers=headers) as resp:
            return resp.status

    # --- HTTP ---------------------------------------------------------------------------

    async def _params(self, request: web.Request) -> JSONDict:
        params: JSONDict = dict(request.query)
        ctype = request.content_type
        if ctype == "application/json":
            body = await request.read()
            if body:
                params.update(json.loads(body))
            return params
        if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    params[key] = {
                        "filename": value.filename,
                        "content_type": value.content_type,
                        "data": value.file.read(),
                    }
                else:
                    params[key] = _decode(key, str(value))
        else:
            await request.read()
        return params

    async def _handle_method(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return _error(ApiError(401, "Unauthorized"))
        try:
            params = await self._params(request)
        except ConnectionResetError:  # the client gave up (cancelled) while sending
            return web.Response(status=499)
        lags = self._lags.get(method)
        if lags:
            await asyncio.sleep(lags.pop(0))
        call = Call(method, params, time.monotonic())
        self.calls.append(call)
        for arrival in self.arrivals:
            arrival(call)
        try:
            self._maybe_fail(method, params)
            self._apply_rules(method, params)
            handler = getattr(self, f"_m_{method}", None)
            if handler is None:
                raise ApiError(404, "Not Found")
            result = await handler(params)
        except ApiError as exc:
            call.status = exc.code
            await self._notify()
            return _error(exc)
        for listener in self.listeners:
            listener(call)
        await self._notify()
        stalls = self._stalls.get(method)
        if stalls:
            await asyncio.sleep(stalls.pop(0))
        return web.json_response({"ok": True, "result": result})

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        path = request.match_info["path"]
        for p, data in self._files.values():
            if p == path:
                if self.file_rate is None:
                    return web.Response(body=data, content_type="application/octet-stream")
                return await self._serve_slowly(request, data, self.file_rate)
        return web.Response(status=404)

    async def _serve_slowly(self, request: web.Request, data: bytes, rate: float) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = len(data)
        self.downloads_in_flight += 1
        await self._notify()
        try:
            await response.prepare(request)
            piece = max(1, int(rate / 20))  # twenty pieces a second
            for start in range(0, len(data), piece):
                await response.write(data[start : start + piece])
                await asyncio.sleep(min(piece, len(data) - start) / rate)
            await response.write_eof()
        finally:
            self.downloads_in_flight -= 1
        return response

    def _maybe_fail(self, method: str, params: JSONDict) -> None:
        queue = self._failures.get(method)
        if not queue:
            return
        f = queue[0]
        if f.parameters and f.parameters.get("_formatted_only") and not params.get("parse_mode"):
            return
        f.remaining -= 1
        if f.remaining <= 0:
            queue.pop(0)
        parameters = None if f.parameters is None or "_formatted_only" in f.parameters else f.parameters
        raise ApiError(f.code, f.description, parameters)

    def _apply_rules(self, method: str, params: JSONDict) -> None:
        """An upgraded group's old id, and the flood limits (``telegram_rules``)."""
        chat_id = _opt_int(params.get("chat_id"))
        if chat_id is not None and chat_id in self.migrated:
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": self.migrated[chat_id]},
            )
        try:
            self.limits.check(method, chat_id)
        except TooManyRequests as exc:
            raise ApiError(429, str(exc), {"retry_after": exc.retry_after}) from exc

    # --- methods ------------------------------------------------------------------------

    async def _m_getMe(self, p: JSONDict) -> JSONDict:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": not self.privacy_mode,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _m_deleteWebhook(self, p: JSONDict) -> bool:
        self.webhook = None
        if _truthy(p.get("drop_pending_updates")):
            self._updates.clear()
        return True

    async def _m_setWebhook(self, p: JSONDict) -> bool:
        self.webhook = {"url": p["url"], "secret_token": p.get("secret_token")}
        max_connections = int(p.get("max_connections") or 40)
        if not 1 <= max_connections <= 100:
            raise ApiError(400, "Bad Request: invalid max_connections specified")
        self.webhook_max_connections = max_connections
        self._hook_slots = asyncio.Semaphore(max_connections)
        if _truthy(p.get("drop_pending_updates")):
            self._updates.clear()
        for update in list(self._updates):  # what is pending goes to the new webhook
            self._deliver(update)
        return True

    async def _m_setMyCommands(self, p: JSONDict) -> bool:
        self.commands[p.get("language_code") or None] = list(p["commands"])
        return True

    async def _m_getUpdates(self, p: JSONDict) -> list[JSONDict]:
        """Long polling; the ``offset`` confirms (deletes) every earlier update, nothing else does."""
        if self.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int(p.get("offset", 0) or 0)
        timeout = float(p.get("timeout", 0) or 0)
        if offset:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]

        def ready() -> bool:
            return self._closing or any(u["update_id"] >= offset for u in self._updates)

        if not ready() and timeout > 0:
            try:
                async with self._changed:
                    await asyncio.wait_for(self._changed.wait_for(ready), timeout)
            except TimeoutError:
                pass
        limit = int(p.get("limit", 100) or 100)
        return [u for u in self._updates if u["update_id"] >= offset][:limit]

    def _check_text(self, text: str, parse_mode: str | None) -> str:
        try:
            visible = visible_text(text, parse_mode)
        except EntityError as exc:
            raise ApiError(400, f"Bad Request: can't parse entities: {exc}") from exc
        if parse_mode and entities_size(text) > MAX_ENTITIES_SIZE:
            raise ApiError(400, "Bad Request: ENTITIES_TOO_LONG")
        if not visible.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_len(visible) > MAX_TEXT:
            raise ApiError(400, "Bad Request: message is too long")
        return visible

    def _bot_message(self, sent: SentMessage) -> JSONDict:
        msg: JSONDict = {
            "message_id": sent.message_id,
            "date": int(time.time()),
            "chat": self._chat(sent.chat_id),
            "from": self.bot_user,
            "text": sent.text,
        }
        if sent.message_thread_id is not None:
            msg["message_thread_id"] = sent.message_thread_id
            msg["is_topic_message"] = True
        if sent.reply_markup:
            msg["reply_markup"] = sent.reply_markup
        return msg

    async def _m_sendMessage(self, p: JSONDict) -> JSONDict:
        chat_id = int(p["chat_id"])
        text = str(p["text"])
        parse_mode = p.get("parse_mode")
        visible = self._check_text(text, parse_mode)
        reply = p.get("reply_parameters") or {}
        sent = SentMessage(
            message_id=self._next_msg_id(chat_id),
            chat_id=chat_id,
            text=visible,
            raw=text,
            parse_mode=parse_mode,
            reply_markup=p.get("reply_markup"),
            message_thread_id=_opt_int(p.get("message_thread_id")),
            reply_to_message_id=_opt_int(reply.get("message_id")),
        )
        self._messages[(chat_id, sent.message_id)] = sent
        self.log(chat_id).messages.append(sent)
        if chat_id > 0:
            self.drafts.message(chat_id)
        return self._bot_message(sent)

    async def _m_editMessageText(self, p: JSONDict) -> JSONDict:
        """Bot API ``editMessageText``, with the real server's answers for each kind of id.

        telegram-bot-api ``Client.cpp`` first looks the message up (``check_message``: TDLib
        ``getMessage`` in that chat; failing, "message to edit not found" — a missing id or one of
        another chat alike); TDLib then refuses a message the bot may not edit (someone else's)
        with "Message can't be edited", lower-cased by ``fail_query_with_error``; the server
        refuses the same content and markup with ``MESSAGE_NOT_MODIFIED``, which the Bot API
        server words as "message is not modified: …".
        """
        chat_id = int(p["chat_id"])
        message_id = int(p["message_id"])
        sent = self._messages.get((chat_id, message_id))
        if (chat_id, message_id) in self._theirs:
            raise ApiError(400, "Bad Request: message can't be edited")
        if sent is None or sent.deleted:
            raise ApiError(400, "Bad Request: message to edit not found")
        text = str(p["text"])
        parse_mode = p.get("parse_mode")
        visible = self._check_text(text, parse_mode)
        markup = p.get("reply_markup")
        if visible == sent.text and text == sent.raw and markup == sent.reply_markup:
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and reply markup "
                "are exactly the same as a current content and reply markup of the message",
            )
        sent.text, sent.raw, sent.parse_mode, sent.reply_markup = visible, text, parse_mode, markup
        sent.edits.append(visible)
        self.log(chat_id).edits.append((message_id, visible))
        return {**self._bot_message(sent), "edit_date": int(time.time())}

    async def _m_editMessageReplyMarkup(self, p: JSONDict) -> JSONDict:
        """Bot API ``editMessageReplyMarkup``: no ``reply_markup`` removes the inline keyboard.

        Like ``editMessageText``, the same markup again is refused with "message is not modified"
        (https://core.telegram.org/bots/api#editmessagereplymarkup).
        """
        chat_id = int(p["chat_id"])
        sent = self._messages.get((chat_id, int(p["message_id"])))
        if sent is None or sent.deleted:
            raise ApiError(400, "Bad Request: message to edit not found")
        markup = p.get("reply_markup") or None
        if markup == (sent.reply_markup or None):
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and reply markup "
                "are exactly the same as a current content and reply markup of the message",
            )
        sent.reply_markup = markup
        return {**self._bot_message(sent), "edit_date": int(time.time())}

    async def _m_deleteMessage(self, p: JSONDict) -> bool:
        sent = self._messages.get((int(p["chat_id"]), int(p["message_id"])))
        if sent is None or sent.deleted:
            raise ApiError(400, "Bad Request: message to delete not found")
        sent.deleted = True
        return True

    async def _m_sendMessageDraft(self, p: JSONDict) -> bool:
        chat_id = int(p["chat_id"])
        if chat_id < 0:
            raise ApiError(400, "Bad Request: draft can be sent only to private chats")
        draft_id = int(p["draft_id"])
        if draft_id == 0:
            raise ApiError(400, "Bad Request: draft_id must be non-zero")
        text = str(p.get("text", ""))
        parse_mode = p.get("parse_mode")
        visible = self._check_text(text, parse_mode) if text else ""
        self.log(chat_id).drafts.append(Draft(draft_id, visible, text, _opt_int(p.get("message_thread_id"))))
        self.drafts.draft(chat_id)
        return True

    async def _m_sendChatAction(self, p: JSONDict) -> bool:
        self.log(int(p["chat_id"])).actions.append(str(p["action"]))
        return True

    async def _m_answerCallbackQuery(self, p: JSONDict) -> bool:
        self.callback_answers.append(p)
        return True

    async def _m_setMessageReaction(self, p: JSONDict) -> bool:
        reactions = p.get("reaction") or []
        emojis = [r.get("emoji", "") for r in reactions]
        self.log(int(p["chat_id"])).reactions.append((int(p["message_id"]), emojis))
        return True

    async def _m_sendDocument(self, p: JSONDict) -> JSONDict:
        chat_id = int(p["chat_id"])
        doc = p["document"]
        if not isinstance(doc, dict):
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        caption = p.get("caption")
        self.log(chat_id).documents.append(
            Document(doc["filename"], doc["data"], doc["content_type"], caption)
        )
        message_id = self._next_msg_id(chat_id)
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": self._chat(chat_id),
            "from": self.bot_user,
            "document": {
                "file_id": f"UP{message_id}",
                "file_unique_id": f"uup{message_id}",
                "file_name": doc["filename"],
                "file_size": len(doc["data"]),
            },
            **({"caption": caption} if caption else {}),
        }

    async def _m_sendPhoto(self, p: JSONDict) -> JSONDict:
        """``sendPhoto`` with an uploaded file: at most 10 MB, as the Bot API documents."""
        chat_id = int(p["chat_id"])
        photo = p["photo"]
        if not isinstance(photo, dict):
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        if len(photo["data"]) > 10 * 1000 * 1000:
            raise ApiError(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
        caption = p.get("caption")
        self.log(chat_id).photos.append(Document(photo["filename"], photo["data"], photo["content_type"], caption))
        message_id = self._next_msg_id(chat_id)
        size = {"file_id": f"UP{message_id}", "file_unique_id": f"uup{message_id}", "width": 64, "height": 64}
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": self._chat(chat_id),
            "from": self.bot_user,
            "photo": [size],
            **({"caption": caption} if caption else {}),
        }

    async def _m_sendVoice(self, p: JSONDict) -> JSONDict:
        """``sendVoice``: OGG/Opus (or MP3, M4A) up to 50 MB; other audio is sent as a document."""
        chat_id = int(p["chat_id"])
        voice = p["voice"]
        if not isinstance(voice, dict):
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        caption = p.get("caption")
        self.log(chat_id).voices.append(Document(voice["filename"], voice["data"], voice["content_type"], caption))
        message_id = self._next_msg_id(chat_id)
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": self._chat(chat_id),
            "from": self.bot_user,
            "voice": {"file_id": f"UP{message_id}", "file_unique_id": f"uup{message_id}", "duration": 1},
        }

    async def _m_getFile(self, p: JSONDict) -> JSONDict:
        file_id = str(p["file_id"])
        if file_id not in self._files:
            raise ApiError(400, "Bad Request: invalid file_id")
        path, data = self._files[file_id]
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(data),
            "file_path": path,
        }


_JSON_FIELDS = {
    "reply_markup", "entities", "caption_entities", "allowed_updates", "commands", "reply_parameters",
    "link_preview_options", "media", "reaction", "scope",
}  # fmt: skip


def _queue_id(update: JSONDict) -> Any:
    """The delivery queue of an update: its chat (as the Bot API server's), else its own."""
    for kind in ("message", "edited_message", "channel_post", "callback_query", "my_chat_member"):
        body = update.get(kind)
        if isinstance(body, dict):
            chat = (body.get("message") or body).get("chat") if kind == "callback_query" else body.get("chat")
            if isinstance(chat, dict) and "id" in chat:
                return int(chat["id"])
    return ("update", update["update_id"])


def _decode(key: str, value: str) -> Any:
    """Undo PTB's encoding: object-valued fields arrive as JSON strings."""
    if key in _JSON_FIELDS:
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _truthy(value: Any) -> bool:
    """A Bot API boolean as PTB sends it in a form (``"true"``/``"True"``) or as JSON."""
    return value is True or str(value).lower() == "true"


def _opt_int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def _error(exc: ApiError) -> web.Response:
    body: JSONDict = {"ok": False, "error_code": exc.code, "description": exc.description}
    if exc.parameters:
        body["parameters"] = exc.parameters
    return web.json_response(body, status=exc.code)


def strip_html(text: str) -> str:
    """Visible text of already-valid HTML (a helper for tests)."""
    return html.unescape(re.sub(r"<[^>]+>", "", text))
