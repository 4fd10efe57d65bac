"""Read an ambiguous export's dates the other way round, when the person says the guess was wrong."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from core.whatsapp.parser import ParsedChat


def _swapped(when: datetime) -> datetime:
    return when.replace(month=when.day, day=when.month)


def swap_day_month(chat: ParsedChat) -> ParsedChat:
    """The chat with day and month exchanged in every date (only for an ambiguous order, where
    no day is above 12, so every swapped date exists); the order is then the person's, no guess."""
    if chat.date_order == "ymd" or not chat.date_order_ambiguous:
        return chat
    return dataclasses.replace(
        chat,
        messages=tuple(dataclasses.replace(m, timestamp=_swapped(m.timestamp)) for m in chat.messages),
        system=tuple(dataclasses.replace(s, timestamp=_swapped(s.timestamp)) for s in chat.system),
        date_order="mdy" if chat.date_order == "dmy" else "dmy",
        date_order_ambiguous=False,
    )
