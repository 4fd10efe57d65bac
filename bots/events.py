"""One dispatch from the core's reply events to an adapter's way of showing them.

Each messenger's reply class implements :class:`ReplyView`; :func:`show` picks the method for
an event, so a new kind of event is added in one place and every adapter is told by mypy.
"""

from __future__ import annotations

from typing import Protocol

from core.types import (
    AdminAlert,
    Button,
    FileReply,
    FinalText,
    Notice,
    PartialAnswer,
    Progress,
    Reaction,
    ReplyEvent,
    StreamStart,
)

Keyboard = tuple[tuple[Button, ...], ...]
"""Button rows as the core gives them."""


class ReplyView(Protocol):
    """How one messenger shows the reply events for one incoming message."""

    async def stream_start(self) -> None:
        """An answer is being generated (typing, a placeholder)."""

    async def delta(self, markdown: str, ended: bool) -> None:
        """The answer so far; ``ended``: the model is done and the final text follows (show no more previews)."""

    async def final(self, markdown: str, buttons: Keyboard) -> None:
        """The complete answer, delivered once."""

    async def notice(self, markdown: str, buttons: Keyboard) -> None:
        """A message from the bot itself."""

    async def file(self, event: FileReply) -> None:
        """A file to send."""

    async def progress(self, event: Progress) -> None:
        """Progress of a long task (one message, updated)."""

    async def react(self, emoji: str) -> None:
        """A reaction to the person's message."""

    async def alert(self, event: AdminAlert) -> None:
        """A message for other people (admins)."""


async def show(view: ReplyView, event: ReplyEvent) -> None:
    """Show ``event`` with the matching method of ``view``."""
    if isinstance(event, StreamStart):
        await view.stream_start()
    elif isinstance(event, PartialAnswer):
        await view.delta(event.text, event.ended)
    elif isinstance(event, FinalText):
        await view.final(event.text, event.buttons)
    elif isinstance(event, Notice):
        await view.notice(event.text, event.buttons)
    elif isinstance(event, FileReply):
        await view.file(event)
    elif isinstance(event, Progress):
        await view.progress(event)
    elif isinstance(event, Reaction):
        await view.react(event.emoji)
    elif isinstance(event, AdminAlert):
        await view.alert(event)
