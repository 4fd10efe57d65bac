"""What the pipeline knows about the message being handled, passed to command handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from core.store.base import UserRecord
from core.types import Incoming, ReplyEvent


@dataclass(frozen=True)
class Turn:
    """One message after identification and the access check."""

    msg: Incoming
    user: UserRecord
    lang: str
    admin: bool

    @property
    def identities(self) -> tuple[str, ...]:
        """The sender's identity and its aliases (e.g. a Signal number beside its UUID)."""
        return (str(self.msg.sender), *self.msg.aliases)

    @property
    def scope(self) -> str:
        """Who the chat's conversations belong to: the user, or the group (and topic)."""
        return f"group:{self.msg.chat}" if self.msg.chat.is_group else f"user:{self.user.id}"


Handler = Callable[[Turn, str], AsyncIterator[ReplyEvent]]
"""A command or button handler: the turn and the arguments (or the button data after its prefix)."""
