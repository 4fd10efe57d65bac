"""Chat commands: one pure parser, and the list both messengers show."""

from __future__ import annotations

import re
from dataclasses import dataclass

# The commands every messenger shows in its menu, in /help's order. Each has a
# ``cmd.<name>`` description in config/locales/.
MENU: tuple[str, ...] = (
    "new",
    "chats",
    "retry",
    "cancel",
    "model",
    "instructions",
    "lang",
    "transcripts",
    "image",
    "voice",
    "import",
    "usage",
    "link",
    "export",
    "forget",
    "help",
)

# Commands that exist but are not advertised in the menu.
HIDDEN: tuple[str, ...] = (
    "start",
    "claim",
    "approve",
    "deny",
    "unlink",
    "users",
    "block",
    "unblock",
    "admin",
    "budget",
)

KNOWN = frozenset(MENU + HIDDEN)

_COMMAND = re.compile(r"/([A-Za-z0-9_]{1,32})(?:@[A-Za-z0-9_]+)?(?:\s+(.*))?\Z", re.DOTALL)


@dataclass(frozen=True)
class Command:
    """A parsed command: ``/model gpt-4o`` is ``Command("model", "gpt-4o")``."""

    name: str
    args: str = ""

    @property
    def known(self) -> bool:
        return self.name in KNOWN


def parse_command(text: str) -> Command | None:
    """Parse ``/name@bot args``; ``None`` when the text is not a command.

    The name is lower-cased; an ``@botname`` suffix (Telegram groups) is dropped; the
    arguments are everything after the first run of white space, trimmed.
    """
    match = _COMMAND.match(text.strip())
    if not match:
        return None
    return Command(match.group(1).lower(), (match.group(2) or "").strip())
