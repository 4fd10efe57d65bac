"""Everything a messenger adapter may use of the core, and nothing more.

An adapter turns its messenger's update into an :class:`~core.types.Incoming`, calls
:meth:`Core.receive` at once (before any other await, so the chat's order is the arrival order),
acknowledges the update upstream once it returns, and renders the events of the returned
:class:`~core.reply.Reply`, start to end, then marks it :meth:`~core.reply.Reply.delivered`.
Answers an earlier run left unfinished come from :meth:`Core.pending`. The core keeps each chat in
line, answers ``/cancel`` out of band, and never waits for a slow reader. (:meth:`Core.submit` is
the same without the record: for the console and tests.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from core.metrics import Metrics
from core.reply import Reply
from core.types import AdminAlert, Incoming


class Core(Protocol):
    """The conversation core as the adapters see it."""

    @property
    def metrics(self) -> Metrics:
        """Counters and histograms the process serves on ``/metrics``."""
        ...

    def submit(self, msg: Incoming) -> Reply:
        """Take the message's place in its chat's line now; read the answer from the reply."""
        ...

    async def receive(self, msg: Incoming, key: str, route: Mapping[str, Any] | None = None) -> Reply | None:
        """Take the message's place in line and record it durably; returns when it is recorded.

        Acknowledge the update upstream only after this returns (Telegram's next ``getUpdates``
        offset, the webhook's 200). ``key`` is the messenger's id of the update
        (``telegram:<update_id>``, ``signal:<sender>:<timestamp>``): a key received before returns
        None and is not answered again. ``route`` is JSON the adapter wants back to deliver the
        answer after a restart (``reply.route``). The model is asked while the record is written.
        Raises :class:`~core.store.base.StoreError` when it cannot be recorded (do not acknowledge).
        """
        ...

    def pending(self, platform: str) -> AsyncIterator[Reply]:
        """Answers to deliver that no ``receive`` returned: start reading it before receiving (never ends).

        First every message of ``platform`` an earlier run recorded but did not deliver: one not
        answered is answered now, in its chat's order; one answered is handed over as stored. A
        reply's ``previous_ref`` is a stub the person already sees: edit it, send nothing new. Then,
        as they come, answers whose reply was closed without ``delivered``, handed over again.
        """
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

    async def ready(self) -> str | None:
        """``None`` when the core can answer (the store responds), else the reason it cannot."""
        ...

    async def start(self) -> None:
        """Open the store; call once before the first message."""
        ...

    async def close(self) -> None:
        """Stop the answers in progress and close the store and the model client."""
        ...
