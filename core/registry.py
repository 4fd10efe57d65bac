"""Every command, button, attachment handler, pre-chat check and after-answer hook, in one place.

Built-in commands and features register the same way; the pipeline's last stage routes by name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from core.request import Handler, Request
from core.store.base import UsageRecord
from core.types import Notice, ReplyEvent

ChatCheck = Callable[[Request], Awaitable[Notice | None]]
"""Runs before a message goes to the model; a returned notice declines it (budgets)."""

AttachmentReader = Callable[[Request], AsyncIterator[ReplyEvent | Request]]
"""Turns a message's files into text (a transcript, a document's text): yields events for the
person and, to go on, the changed request last; nothing when not its kind; no request to stop."""

AnswerHook = Callable[[Request, UsageRecord], AsyncIterator[ReplyEvent]]
"""Runs after an answer is stored and accounted (budget alerts)."""


def _never(request: Request) -> bool:
    return False


@dataclass(frozen=True)
class CommandSpec:
    """A command's handler and what the pipeline must know about it.

    ``before_approval`` says whether a person without access may use it (``/claim``, or ``/link``
    with a code that proves they own an account with access); with ``recheck`` the access check
    runs after it, so a wrong code is answered like any message from a stranger. ``uses_model``
    puts it behind the budget check (``/retry``).
    """

    name: str
    handler: Handler
    before_approval: Callable[[Request], bool] = _never
    recheck: bool = False
    uses_model: bool = False


class Registry:
    """The handlers of one core, filled by the composition root before the first message."""

    def __init__(self) -> None:
        self._commands: dict[str, CommandSpec] = {}
        self._callbacks: dict[str, Handler] = {}
        self.attachment_handlers: list[Handler] = []
        self.attachment_readers: list[AttachmentReader] = []
        self.chat_checks: list[ChatCheck] = []
        self.chat_meta: list[str] = []  # meta keys the chat checks read
        self.answer_hooks: list[AnswerHook] = []

    def add_command(
        self,
        name: str,
        handler: Handler,
        *,
        before_approval: Callable[[Request], bool] = _never,
        recheck: bool = False,
        uses_model: bool = False,
    ) -> None:
        """Handle ``/name``; the handler gets the arguments text."""
        self._commands[name] = CommandSpec(name, handler, before_approval, recheck, uses_model)

    def add_callback(self, prefix: str, handler: Handler) -> None:
        """Handle button data ``prefix:value``; the handler gets ``value``."""
        self._callbacks[prefix] = handler

    def add_attachment_handler(self, handler: Handler) -> None:
        """Offer a message with attachments to a handler; it yields nothing when not its kind."""
        self.attachment_handlers.append(handler)

    def add_attachment_reader(self, reader: AttachmentReader) -> None:
        """Let a reader turn files into the message's text before the rest of the pipeline."""
        self.attachment_readers.append(reader)

    def add_chat_check(self, check: ChatCheck, reads_meta: tuple[str, ...] = ()) -> None:
        """Run before a message goes to the model; a returned notice declines the message.

        ``reads_meta``: the store's meta keys the check reads, read beside the turn's user
        (through ``request.reads``, core/readahead.py) rather than after it.
        """
        self.chat_checks.append(check)
        self.chat_meta.extend(reads_meta)

    def add_answer_hook(self, hook: AnswerHook) -> None:
        """Run after an answer is stored and accounted (budgets, alerts)."""
        self.answer_hooks.append(hook)

    def command(self, name: str) -> CommandSpec | None:
        """The registered command of that name, if any."""
        return self._commands.get(name)

    def command_names(self) -> frozenset[str]:
        """Every registered command."""
        return frozenset(self._commands)

    def callback(self, prefix: str) -> Handler | None:
        """The handler for button data with that prefix, if any."""
        return self._callbacks.get(prefix)

    async def refusal(self, request: Request) -> Notice | None:
        """The first pre-chat check that declines the request, if one does."""
        for check in self.chat_checks:
            refusal = await check(request)
            if refusal is not None:
                return refusal
        return None
