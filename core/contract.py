"""Everything a messenger adapter may use of the core, and nothing more.

An adapter turns its messenger's update into an :class:`~core.types.Incoming`, calls
:meth:`Core.submit` at once (before any await, so the chat's order is the arrival order), and
renders the events of the returned :class:`~core.reply.Reply`, start to end. The core keeps each
chat in line, answers ``/cancel`` out of band, and never waits for a slow reader.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from core.metrics import Metrics
from core.reply import Reply
from core.types import AdminAlert, ChatKey, Incoming


class Core(Protocol):
    """The conversation core as the adapters see it."""

    @property
    def metrics(self) -> Metrics:
        """Counters and histograms the process serves on ``/metrics``."""
        ...

    def submit(self, msg: Incoming) -> Reply:
        """Take the message's place in its chat's line now; read the answer from the reply."""
        ...

    def text(self, lang: str, key: str, **values: Any) -> str:
        """One of the bot's texts, for the few an adapter must show itself."""
        ...

    def language(self, language_code: str | None) -> str:
        """The bot language for a messenger's language code."""
        ...

    def command_menu(self, lang: str) -> list[tuple[str, str]]:
        """(command, description) pairs for a messenger's command menu."""
        ...

    def menu_languages(self) -> tuple[str, ...]:
        """Every language with a texts file; register a command menu in each (``"en"`` as the default)."""
        ...

    def alerts(self, platform: str) -> AsyncIterator[AdminAlert]:
        """Alerts another process left for this messenger's people, as they come (never ends)."""
        ...

    async def move_chat(self, old: ChatKey, new: ChatKey) -> int:
        """A group chat got a new id (Telegram's upgrade to a supergroup): its conversations follow it."""
        ...

    async def ready(self) -> str | None:
        """``None`` when the core can answer (the store responds), else the reason it cannot."""
        ...

    async def start(self) -> None:
        """Open the store; call once before the first message."""
        ...

    async def close(self) -> None:
        """Stop the answers in progress and close the store and the model client."""
        ...
