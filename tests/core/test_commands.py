"""Commands are parsed by one pure function."""

from __future__ import annotations

import pytest

from core.commands import Command, parse_command


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/help", Command("help")),
        ("/HELP", Command("help")),
        ("/model gpt-4o", Command("model", "gpt-4o")),
        ("/model@ferry_bot gpt-4o", Command("model", "gpt-4o")),
        ("  /new  ", Command("new")),
        ("/instructions Be brief.\nUse bullet points.", Command("instructions", "Be brief.\nUse bullet points.")),
        ("/instructions\nline one", Command("instructions", "line one")),
        ("/claim ABCD-EFGH", Command("claim", "ABCD-EFGH")),
        ("hello /help", None),
        ("/", None),
        ("/ space", None),
        ("//comment", None),
        ("/path/to/file", None),
        ("", None),
    ],
)
def test_parse_command(text: str, expected: Command | None) -> None:
    assert parse_command(text) == expected


def test_known_commands() -> None:
    assert Command("help").known and not Command("frobnicate").known
