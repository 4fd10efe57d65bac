"""Values that cross the seam between the messenger adapters and the core.

An adapter turns its messenger's event into one :class:`Incoming` and renders the
:class:`ReplyEvent` values the core yields. Nothing here knows any messenger library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Identity:
    """One account on one messenger, such as ``telegram:123`` or ``signal:<uuid>``."""

    platform: str
    id: str

    def __str__(self) -> str:
        return f"{self.platform}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> Identity:
        platform, _, ident = text.partition(":")
        if not platform or not ident:
            raise ValueError(f"not an identity: {text!r} (expected platform:id)")
        return cls(platform, ident)


@dataclass(frozen=True)
class ChatKey:
    """Where a message was said: a private chat or a group (and forum topic).

    In a private chat the conversation belongs to the user; in a group it belongs to the
    group chat and topic, never to one member.
    """

    platform: str
    chat_id: str
    topic: str | None = None
    is_group: bool = False

    def __str__(self) -> str:
        base = f"{self.platform}:{self.chat_id}"
        return f"{base}:{self.topic}" if self.topic else base


@dataclass(frozen=True)
class FileLimit:
    """A size limit on files: ``name`` says whose it is (``telegram``, ``transcription``, ...)."""

    name: str
    size: int  # bytes


@dataclass(frozen=True)
class Attachment:
    """A file that came with a message; ``data`` (or the spool file ``path``) is loaded by the adapter.

    ``over_limit`` is set instead of ``data`` when the file was larger than a limit that applies
    (the adapter did not fetch it); ``duration`` is an audio length in seconds when known.
    """

    kind: str  # "document", "photo", "voice", "sticker", "video", "audio", "other"
    filename: str | None = None
    mime_type: str | None = None
    size: int | None = None
    data: bytes | None = None
    over_limit: FileLimit | None = None
    duration: float | None = None
    path: str | None = None  # the bytes spooled to a file in the data folder instead (core/media/spool.py)

    @property
    def fetched(self) -> bool:
        """Whether the bytes are here, in memory or in a spool file."""
        return self.data is not None or self.path is not None

    def source(self) -> bytes | str:
        """The bytes, or the spool file's path for readers that open it themselves."""
        if self.data is not None:
            return self.data
        if self.path is None:
            raise ValueError("the attachment was not fetched")
        return self.path

    def read(self) -> bytes:
        """The bytes (read from the spool file when spooled: call it off the event loop)."""
        source = self.source()
        if isinstance(source, bytes):
            return source
        with open(source, "rb") as f:
            return f.read()


@dataclass(frozen=True)
class Incoming:
    """One message from a person, in the messenger-neutral shape the core understands."""

    sender: Identity
    chat: ChatKey
    text: str
    sender_name: str | None = None
    # Extra identity strings that should match FERRY_ADMINS, e.g. a Signal number beside its UUID.
    aliases: tuple[str, ...] = ()
    language_code: str | None = None
    attachments: tuple[Attachment, ...] = ()
    addressed: bool = True  # in groups: mentioned, replied to, or a command
    quoted_text: str | None = None  # an earlier answer the person replied to
    message_id: str | None = None
    # Set when the person pressed a button (or, on Signal, answered a numbered choice):
    # the ``Button.data`` of the choice. ``text`` is then empty.
    callback: str | None = None
    raw: Any = field(default=None, compare=False, repr=False)


# --- reply events -------------------------------------------------------------------------


@dataclass(frozen=True)
class Button:
    """One choice offered to the user; ``data`` is sent back as a callback when chosen."""

    label: str
    data: str  # comes back as ``Incoming.callback``


@dataclass(frozen=True)
class StreamStart:
    """The model has started working on an answer (show typing)."""


@dataclass(frozen=True)
class PartialAnswer:
    """The answer being generated, as far as it goes: ``text`` is the whole answer so far (not a piece).

    ``ended``: the model's stream is over, and the final text follows as soon as the answer is
    stored; an adapter shows no further preview (it would be replaced at once).
    """

    text: str
    ended: bool = False


@dataclass(frozen=True)
class FinalText:
    """A complete message to deliver, in Markdown. Ends a stream when one was started.

    ``interrupted`` marks an answer that was cut off (cancelled or failed halfway).
    """

    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    interrupted: bool = False
    streamed: bool = False


@dataclass(frozen=True)
class Notice:
    """A short message of the bot's own (help text, confirmation, error sentence)."""

    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    is_error: bool = False


@dataclass(frozen=True)
class FileReply:
    """A file to send as a document."""

    filename: str
    data: bytes
    mime_type: str = "application/octet-stream"
    caption: str | None = None


@dataclass(frozen=True)
class Progress:
    """A long operation's progress, to show as an edited status message."""

    text: str
    done: int  # steps finished, of ``total``
    total: int


@dataclass(frozen=True)
class Reaction:
    """React to the person's message (e.g. 👀 when a command will take a while)."""

    emoji: str


@dataclass(frozen=True)
class AdminAlert:
    """A message for other identities (admins), e.g. an access request with buttons."""

    to: tuple[str, ...]
    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()


ReplyEvent = StreamStart | PartialAnswer | FinalText | Notice | FileReply | Progress | Reaction | AdminAlert
