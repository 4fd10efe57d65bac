"""What the pipeline knows about the message being handled, passed along the stages and to handlers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.commands import Command
from core.store.base import UserRecord
from core.types import Incoming, ReplyEvent

if TYPE_CHECKING:
    from core.intake import Receipt
    from core.readahead import ReadAhead


@dataclass(frozen=True)
class Request:
    """One message after identification: who sent it, in which language, and what it asks."""

    msg: Incoming
    user: UserRecord
    lang: str
    admin: bool
    command: Command | None = None
    text: str = ""  # the message text, cleaned (empty for a button press)
    is_new: bool = False  # the sender wrote for the first time
    receipt: Receipt | None = None  # received durably (issue 11): its record, its stable message ids
    reads: ReadAhead | None = None  # a chat turn's store reads started early (core/readahead.py)
    user_saved: asyncio.Future[None] | None = None
    """A new person's record, being written beside their first model request (core/stages.py)."""

    @property
    def identities(self) -> tuple[str, ...]:
        """The sender's identity and its aliases (e.g. a Signal number beside its UUID)."""
        return (str(self.msg.sender), *self.msg.aliases)

    @property
    def scope(self) -> str:
        """Who the chat's conversations belong to: the user, or the group (and topic)."""
        return scope_of(self.msg, self.user.id)

    async def recorded(self) -> None:
        """Wait until the message's record is durable, before storing anything for it (raises
        :class:`~core.intake.DuplicateMessage` for a key an earlier delivery recorded)."""
        if self.receipt is not None:
            await self.receipt.recorded()

    @property
    def recording(self) -> bool:
        """The message's record is still being written: nothing can be stored for it yet."""
        return self.receipt is not None and self.receipt.recording

    @property
    def is_chat(self) -> bool:
        """A message for the model: neither a command nor a button press."""
        return self.command is None and self.msg.callback is None


def scope_of(msg: Incoming, user_id: str) -> str:
    """The scope of a message from the user with that id (see :attr:`Request.scope`)."""
    return f"group:{msg.chat}" if msg.chat.is_group else f"user:{user_id}"


Handler = Callable[[Request, str], AsyncIterator[ReplyEvent]]
"""A command or button handler: the request and the arguments (or the button data after its prefix)."""
