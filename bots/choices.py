"""Numbered choices: how a messenger without buttons offers the core's buttons.

Signal (and any adapter without inline buttons) shows the buttons as a numbered line under
the text; the person answers with the number. A :class:`ChoiceBook` remembers what was
offered in each chat, for the next message only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from core.types import Button

_CHOICE = re.compile(r"^\s*(\d{1,3})\s*[.)]?\s*$")


def numbered_choices(buttons: Sequence[Sequence[Button]]) -> list[Button]:
    """The buttons in reading order, as the person will number them."""
    return [button for row in buttons for button in row]


def with_choices(markdown: str, choices: Sequence[Button]) -> str:
    """The text with its choices as a numbered line under it ("1. Approve  2. Deny")."""
    if not choices:
        return markdown
    line = "  ".join(f"{i}. {button.label}" for i, button in enumerate(choices, 1))
    # "1. x" at the start of a line would become a Markdown list (and be renumbered).
    return f"{markdown}\n\n" + re.sub(r"^(\d+)\.", r"\1\\.", line)


@dataclass
class ChoiceBook:
    """The choices last offered per chat; each set is good for the next message only."""

    offered: dict[str, list[Button]] = field(default_factory=dict)

    def remember(self, chat_id: str, buttons: Sequence[Sequence[Button]]) -> list[Button]:
        """Record the choices just offered in a chat; returns them numbered in order."""
        choices = numbered_choices(buttons)
        if choices:
            self.offered[chat_id] = choices
        else:
            self.offered.pop(chat_id, None)
        return choices

    def pick(self, keys: Sequence[str], text: str) -> str | None:
        """The button data a reply ``text`` chose in the first of ``keys`` that has choices.

        Answered or not, the choices are forgotten: they were for this message only.
        """
        offered = next((self.offered[k] for k in keys if k in self.offered), None)
        if offered is None:
            return None
        for k in keys:
            self.offered.pop(k, None)
        match = _CHOICE.match(text)
        if match is None:
            return None
        pick = int(match.group(1))
        return offered[pick - 1].data if 1 <= pick <= len(offered) else None
