"""Telegram updates into the core's :class:`~core.types.Incoming` values.

Who spoke, where (chat, forum topic), whether the bot was addressed in a group, and the
attachments, downloading a document (into the spool, when given one) so the core can read it.
"""

from __future__ import annotations

import logging
import re

from telegram import (
    CallbackQuery,
    Message,
    MessageEntity,
    User,
)
from telegram.constants import ChatType

from bots.telegram.media import Albums, audio_attachment, fetch_unless_over, lead, photo_attachments
from bots.telegram.send import PLATFORM, Target
from core.media.spool import Spool
from core.types import (
    Attachment,
    ChatKey,
    Identity,
    Incoming,
)

log = logging.getLogger(__name__)

# --- updates → Incoming ------------------------------------------------------------------------


def _command_entity(message: Message) -> MessageEntity | None:
    for entity in message.entities:
        if entity.type == MessageEntity.BOT_COMMAND and entity.offset == 0:
            return entity
    return None


def _mentions_bot(message: Message, bot_user: User, handle: str | None) -> bool:
    entities = message.parse_entities() if message.text else message.parse_caption_entities()
    for entity, value in entities.items():
        if entity.type == MessageEntity.MENTION and handle is not None and value.lower() == handle:
            return True
        if entity.type == MessageEntity.TEXT_MENTION and entity.user is not None and entity.user.id == bot_user.id:
            return True
    return False


def _without_handle(text: str, handle: str) -> str:
    lower = text.lower()
    while handle in lower:
        i = lower.index(handle)
        text = text[:i] + text[i + len(handle) :]
        lower = text.lower()
    return re.sub(r"[ \t]{2,}", " ", text)


def _replies_to_bot(message: Message, bot_user: User) -> bool:
    reply = message.reply_to_message
    return (
        reply is not None
        and reply.from_user is not None
        and reply.from_user.id == bot_user.id
        and reply.forum_topic_created is None
    )


def _addressing(message: Message, bot_user: User) -> tuple[str, bool]:
    """The text with the bot's own handle removed, and whether the bot was addressed."""
    text = message.text or message.caption or ""
    username = (bot_user.username or "").lower()
    handle = f"@{username}" if username else None
    addressed = False

    command = _command_entity(message) if message.text else None
    if command is not None:
        word = text[: command.length]  # a command is ASCII, so UTF-16 and str offsets agree
        name, _, at = word.partition("@")
        if at and at.lower() != username:
            return text, False  # a command for another bot in the same group
        addressed = True
        text = name + text[len(word) :]

    addressed = addressed or _mentions_bot(message, bot_user, handle)
    if handle and handle in text.lower():
        addressed = True
        text = _without_handle(text, handle)
    addressed = addressed or _replies_to_bot(message, bot_user)
    return text.strip(), addressed


def _media_attachment(message: Message) -> Attachment | None:
    """An attachment the core does not read yet (it answers with a friendly notice)."""
    if message.voice:
        return Attachment("voice", None, message.voice.mime_type, message.voice.file_size)
    if message.photo:
        return Attachment("photo", None, "image/jpeg", message.photo[-1].file_size)
    if message.sticker:
        return Attachment("sticker", None, None, message.sticker.file_size)
    if message.video or message.video_note or message.animation:
        return Attachment("video")
    if message.audio:
        return Attachment("audio", message.audio.file_name, message.audio.mime_type, message.audio.file_size)
    if message.location or message.contact or message.poll or message.venue or message.dice:
        return Attachment("other")
    return None


async def _document(message: Message, spool: Spool | None) -> Attachment | None:
    doc = message.document
    if doc is None:
        return None
    over, data, path = await fetch_unless_over(message, doc, "document", spool)
    return Attachment("document", doc.file_name, doc.mime_type, doc.file_size, data, over_limit=over, path=path)


def chat_key(message: Message, user: User) -> ChatKey:
    """The conversation key: the user in private chats, the group (and topic) in groups."""
    chat = message.chat
    if chat.type == ChatType.PRIVATE:
        return ChatKey(PLATFORM, str(user.id))
    topic = str(message.message_thread_id) if message.is_topic_message and message.message_thread_id else None
    return ChatKey(PLATFORM, str(chat.id), topic=topic, is_group=True)


def target_for(message: Message, lang: str | None) -> Target:
    """Replies go to the same chat and topic; in groups they quote the person's message."""
    private = message.chat.type == ChatType.PRIVATE
    thread = message.message_thread_id if message.is_topic_message else None
    return Target(
        chat_id=message.chat.id,
        thread_id=thread,
        reply_to=None if private else message.message_id,
        is_private=private,
        lang=lang,
        message_id=message.message_id,
    )


async def incoming_from_message(
    message: Message, bot_user: User, albums: Albums | None = None, spool: Spool | None = None
) -> Incoming | None:
    """The core's view of a Telegram message (``None`` for messages no person sent, and for the
    photos of an album after its first, which carries them all); files go to ``spool`` if given."""
    user = message.from_user
    if user is None or user.is_bot or message.chat.type == ChatType.CHANNEL:
        return None
    album = await albums.gather(message) if albums is not None else [message]
    if album is None:
        return None
    message = lead(album)
    text, addressed = _addressing(message, bot_user)
    is_group = message.chat.type != ChatType.PRIVATE
    wanted = addressed or not is_group
    photos = await photo_attachments(album, spool) if wanted else ()
    attachment = await audio_attachment(message, spool) if wanted else None
    attachment = attachment or (None if photos else _media_attachment(message))
    if attachment is None and message.document is not None and wanted:
        attachment = await _document(message, spool)
    quoted = None
    reply = message.reply_to_message
    if reply is not None and reply.from_user is not None and reply.from_user.id == bot_user.id:
        quoted = reply.text or reply.caption
    return Incoming(
        sender=Identity(PLATFORM, str(user.id)),
        chat=chat_key(message, user),
        text=text,
        sender_name=user.full_name,
        language_code=user.language_code,
        attachments=photos + ((attachment,) if attachment else ()),
        addressed=addressed or not is_group,
        quoted_text=quoted,
        message_id=str(message.message_id),
        raw=message,
    )


def incoming_from_callback(query: CallbackQuery) -> tuple[Incoming, Target]:
    """A button press, as the core's ``Incoming(callback=data)`` and where to answer it."""
    user = query.from_user
    message = query.message
    if message is not None and message.chat.type != ChatType.PRIVATE:
        thread = message.message_thread_id if isinstance(message, Message) else None
        key = ChatKey(PLATFORM, str(message.chat.id), topic=str(thread) if thread else None, is_group=True)
        target = Target(chat_id=message.chat.id, thread_id=thread, is_private=False)
    else:
        key = ChatKey(PLATFORM, str(user.id))
        target = Target(chat_id=message.chat.id if message else user.id)
    incoming = Incoming(
        sender=Identity(PLATFORM, str(user.id)),
        chat=key,
        text="",
        sender_name=user.full_name,
        language_code=user.language_code,
        callback=query.data or "",
        raw=query,
    )
    return incoming, target


