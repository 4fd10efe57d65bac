"""Signal messages as the core's :class:`~core.types.Incoming` values.

Mentions of the bot are taken out of the text (and decide whether a group message is for the
bot), a number answering a numbered choice becomes that choice's callback, and documents are
downloaded from signal-cli-rest-api so the core can read them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from signalbot import Attachment as SignalAttachment
from signalbot import DataMessage

from bots.choices import ChoiceBook
from bots.signal.media import FETCHED_KINDS, is_long_text
from core.media import limits
from core.types import Attachment, ChatKey, Identity, Incoming

PLATFORM = "signal"
MENTION = "\ufffc"  # how Signal marks a mention inside the text


def recipient_of(identity: str) -> str | None:
    """The Signal recipient (UUID or +number) of an identity string, or None if not Signal."""
    platform, _, ident = identity.partition(":")
    if platform != PLATFORM or not ident:
        return None
    return ident


def chat_key(message: DataMessage) -> ChatKey:
    """The conversation a Signal message belongs to: its group, else its sender."""
    if message.is_group() and message.group_info is not None and message.group_info.group_id:
        return ChatKey(PLATFORM, message.group_info.group_id, is_group=True)
    return ChatKey(PLATFORM, message.source_uuid or message.source_number or "unknown")


def kind_of(mime: str, is_voice_note: bool) -> str:
    """The core's attachment kind for a MIME type."""
    if is_voice_note:
        return "voice"
    major = mime.split("/", 1)[0]
    if major == "image":
        return "photo"
    if major in ("audio", "video"):
        return major
    return "document"


@dataclass
class SignalReader:
    """Reads signalbot's messages for the bot with ``phone_number`` (and ``bot_uuid`` if known)."""

    phone_number: str
    bot_uuid: str | None
    download: Callable[[str], Awaitable[bytes | str | None]]  # the bytes, or a spool file's path
    delete: Callable[[str], Awaitable[None]] | None = None
    choices: ChoiceBook = field(default_factory=ChoiceBook)

    def is_me(self, uuid: str | None, number: str | None) -> bool:
        """Whether a mention or quote names the bot itself."""
        return (number is not None and number == self.phone_number) or (
            uuid is not None and self.bot_uuid is not None and uuid == self.bot_uuid
        )

    async def to_incoming(self, message: DataMessage, chat: ChatKey | None = None) -> Incoming:
        """Translate signalbot's message into the core's value (downloading documents)."""
        chat = chat or chat_key(message)
        uuid, number = message.source_uuid, message.source_number
        text = self.text_without_mentions(message)
        quoted = message.quote
        addressed = not chat.is_group or self.addresses_me(message) or text.lstrip().startswith("/")
        keys = [chat.chat_id] + ([number] if number and not chat.is_group else [])
        callback = self.choices.pick(keys, text)
        attachments = tuple([await self.attachment(a) for a in message.attachments or []])
        attachments = tuple(a for a in attachments if not is_long_text(a.mime_type))
        return Incoming(
            sender=Identity(PLATFORM, uuid or number or "unknown"),
            chat=chat,
            text="" if callback is not None else text,
            sender_name=message.source_name or number or None,  # a contact's name, else the number
            aliases=(f"{PLATFORM}:{number}",) if number and uuid else (),
            attachments=attachments,
            addressed=addressed or callback is not None,
            quoted_text=quoted.text if quoted is not None else None,
            message_id=str(message.timestamp),
            callback=callback,
            raw=message,
        )

    def addresses_me(self, message: DataMessage) -> bool:
        """Whether the message mentions the bot or quotes one of its messages."""
        if any(self.is_me(m.uuid, m.number) for m in message.mentions or []):
            return True
        quoted = message.quote
        return quoted is not None and self.is_me(quoted.author_uuid, quoted.author_number or quoted.author)

    def text_without_mentions(self, message: DataMessage) -> str:
        """The text with mentions of the bot removed and other mentions as ``@name``."""
        text = message.text or ""
        if MENTION not in text:
            return text.strip()
        # Mention offsets count UTF-16 units; walk the placeholders in order instead.
        mentions = sorted(message.mentions or [], key=lambda m: m.start)
        out: list[str] = []
        index = 0
        for ch in text:
            if ch != MENTION:
                out.append(ch)
                continue
            mention = mentions[index] if index < len(mentions) else None
            index += 1
            if mention is None or self.is_me(mention.uuid, mention.number):
                continue
            out.append("@" + (mention.name or mention.number or "someone"))
        return " ".join("".join(out).split(" ")).strip()

    async def attachment(self, attachment: SignalAttachment) -> Attachment:
        """The core's attachment; the bytes of kinds the core reads are fetched unless over a limit,
        and signal-cli's copy is deleted once read."""
        mime = attachment.content_type or "application/octet-stream"
        kind = kind_of(mime, attachment.is_voice_note)
        over = limits.over(kind, attachment.size, limits.SIGNAL)
        fetched: bytes | str | None = None
        if kind in FETCHED_KINDS and over is None and attachment.local_filename and not is_long_text(mime):
            fetched = await self.download(attachment.local_filename)
        data = fetched if isinstance(fetched, bytes) else None
        if attachment.local_filename and self.delete is not None:
            await self.delete(attachment.local_filename)
        return Attachment(
            kind=kind,
            filename=attachment.remote_filename,
            mime_type=mime,
            size=attachment.size if attachment.size is not None else (len(data) if data else None),
            data=data,
            over_limit=over,
            path=fetched if isinstance(fetched, str) else None,
        )
