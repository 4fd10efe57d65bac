"""Sending a final text as new messages exactly once, across crashes (issue 11).

Before each part is sent, a durable mark names it (:func:`bots.telegram.probe.sending_mark`:
which event of the reply, which part, and the id it must be above). A restart that finds the
mark asks Telegram whether that part arrived (:func:`bots.telegram.probe.find_sent`) and sends
only what did not: never twice, never lost. This keeps DESIGN.md decision 6 as it is: a private
chat still streams by drafts and ends with one ``sendMessage`` per part.
"""

from __future__ import annotations

import logging
import time
from html import escape

from telegram import ReplyParameters
from telegram.error import TelegramError

from bots.events import Keyboard
from bots.intake import Marker
from bots.telegram.probe import Search, Sending, find_sent, sending_mark
from bots.telegram.render import render_parts
from bots.telegram.send import UNKNOWN_MESSAGE, Sender, Target, bot_api, keyboard

log = logging.getLogger(__name__)


async def send_marked(
    sender: Sender,
    target: Target,
    markdown: str,
    buttons: Keyboard,
    *,
    event: int,
    mark: Marker,
    resume: Sending | None,
    search: Search,
) -> None:
    """Send event ``event``'s text part by part, each after its durable mark; ``resume``: the mark
    an earlier run left for this event (the part it names is looked for before anything is sent)."""
    parts = render_parts(markdown) or [sender.pacing.placeholder]
    markup = keyboard(buttons)
    chat = sender.chat_id(target)
    start, after = 0, 0
    if resume is not None and resume.event == event and resume.part < len(parts):
        start, after = resume.part, resume.after
        last = start == len(parts) - 1
        found = await find_sent(sender.bot, chat, parts[start], markup if last else None, after, sender.ids, search)
        if found is not None:
            log.info("Telegram: part of an answer in chat %s had arrived before the restart; not sent again", chat)
            sender.ids.saw(chat, found)
            start, after = start + 1, found
    for j in range(start, len(parts)):
        last = j == len(parts) - 1
        async with sender.ids.lock(chat):
            after = max(after, sender.ids.floor(chat, target.message_id))
            await mark(sending_mark(event, j, after))
            used = await sender.put(target, parts[j], markup=markup if last else None, quote=j == 0)
        known = [m for m in used if m != UNKNOWN_MESSAGE]
        if known:
            after = max(after, *known)


PLACEHOLDER = -1
"""The event number of a group's placeholder in a ``sending`` mark (it comes before any event)."""


async def place_placeholder(sender: Sender, target: Target, mark: Marker | None, resume: Sending | None) -> int:
    """Send a group's placeholder after its durable mark; returns its id.

    ``resume``: an earlier run marked a placeholder and stopped before recording its id. That one
    may be in the chat: once the new one is there (its id bounds the search), every bare
    placeholder of the bot's above the earlier mark is deleted, so no stray "…" stays. Not in a
    forum topic, whose chat's ids other topics' answers share.
    """
    chat = sender.chat_id(target)
    stray = resume is not None and resume.event == PLACEHOLDER and target.thread_id is None
    reply = ReplyParameters(target.reply_to, allow_sending_without_reply=True) if target.reply_to else None
    async with sender.ids.lock(chat):
        after = resume.after if stray and resume is not None else sender.ids.floor(chat, target.message_id)
        if mark is not None:
            await mark(sending_mark(PLACEHOLDER, 0, after))
        started = time.monotonic()
        sent = await bot_api(
            sender.bot, "sendMessage",
            chat_id=chat, text=sender.pacing.placeholder, message_thread_id=target.thread_id, reply_parameters=reply,
        )  # fmt: skip
        placeholder = int(sent["message_id"])
        sender.ids.saw(chat, placeholder, sent_at=started)
    if mark is not None:  # after a restart this placeholder is edited, not sent anew
        await mark(str(placeholder))
    if stray:
        await _clear_strays(sender, chat, after, placeholder)
    return placeholder


async def _clear_strays(sender: Sender, chat: int, after: int, upto: int) -> None:
    html = escape(sender.pacing.placeholder)
    while True:
        found = await find_sent(sender.bot, chat, html, None, after, sender.ids, Search(), upto=upto)
        if found is None:
            return
        log.info("Telegram: deleting a placeholder an earlier run left in chat %s", chat)
        try:
            await sender.bot.delete_message(chat, found)
        except TelegramError as exc:
            log.info("could not delete a stray placeholder in chat %s: %s", chat, exc.message)
        after = found
