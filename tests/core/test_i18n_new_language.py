"""Adding a language is adding one file: a third locale works end to end without code changes."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest

from core.assistant import Assistant
from core.i18n import Texts, is_plural_table
from core.settings import DEFAULT_CONFIG_DIR, SettingsError
from core.types import ChatKey, FileReply, FinalText, Identity, Incoming, Notice, ReplyEvent
from tests.conftest import MakeAssistant, make_settings

POLISH_FORMS = ("one", "few", "many", "other")  # CLDR: 1 plik, 2 pliki, 5 plików, 1,5 pliku


def _polish(value: Any) -> Any:
    """A stand-in Polish translation of an English entry: marked text, Polish plural forms."""
    if is_plural_table(value):
        return {form: f"[pl:{form}] " + value.get(form, value["other"]) for form in POLISH_FORMS}
    if isinstance(value, dict):
        return {key: _polish(item) for key, item in value.items()}
    return "[pl] " + value


def _toml(data: dict[str, Any]) -> str:
    """TOML for a locale file: tables of strings and inline plural tables (JSON strings are TOML)."""
    lines: list[str] = []

    def table(prefix: str, items: dict[str, Any]) -> None:
        nested = {k: v for k, v in items.items() if isinstance(v, dict) and not is_plural_table(v)}
        if prefix:
            lines.append(f"[{prefix}]")
        for key, value in items.items():
            if is_plural_table(value):
                forms = ", ".join(f"{form} = {json.dumps(text)}" for form, text in value.items())
                lines.append(f"{key} = {{ {forms} }}")
            elif not isinstance(value, dict):
                lines.append(f"{key} = {json.dumps(value)}")
        for key, value in nested.items():
            table(f"{prefix}.{key}" if prefix else key, value)

    table("", data)
    return "\n".join(lines) + "\n"


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """The shipped config folder plus one new file, ``locales/pl.toml``; nothing else changes."""
    config = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config)
    english = tomllib.loads((config / "locales" / "en.toml").read_text(encoding="utf-8"))
    polish = _polish(english)
    polish["lang"]["name"] = "Polski"
    (config / "locales" / "pl.toml").write_text(_toml(polish), encoding="utf-8")
    return config


def _incoming(text: str) -> Incoming:
    ident = Identity.parse("telegram:7")
    return Incoming(sender=ident, chat=ChatKey("telegram", "7"), text=text, language_code="pl-PL")


async def _say(assistant: Assistant, text: str) -> list[ReplyEvent]:
    return [event async for event in assistant.handle(_incoming(text))]


def test_the_new_file_passes_the_translators_check(config_dir: Path) -> None:
    texts = Texts.load(config_dir / "locales")
    assert texts.languages == ("en", "id", "pl")
    assert texts.problems() == []
    assert texts.pick_language("pl-PL") == "pl"
    # CLDR's Polish rules pick the forms; the digits are grouped the Polish way.
    assert texts.get("pl", "budget.tokens", count=1) == "[pl:one] 1 token"
    assert texts.get("pl", "budget.tokens", count=3) == "[pl:few] 3 tokens"
    assert texts.get("pl", "budget.tokens", count=5) == "[pl:many] 5 tokens"
    assert texts.get("pl", "budget.tokens", count=12345) == "[pl:many] 12\xa0345 tokens"


def test_ferry_lang_accepts_a_language_once_its_file_exists(config_dir: Path) -> None:
    with pytest.raises(SettingsError, match="FERRY_LANG must be one of en, id, not 'pl'"):
        make_settings(FERRY_LANG="pl")
    assert make_settings(FERRY_LANG="pl", FERRY_CONFIG_DIR=str(config_dir)).default_lang == "pl"


async def test_a_polish_user_is_answered_in_polish_end_to_end(config_dir: Path, make_assistant: MakeAssistant) -> None:
    assistant = await make_assistant(FERRY_CONFIG_DIR=str(config_dir), FERRY_LANG="pl")
    assert assistant.menu_languages() == ("en", "id", "pl")  # a messenger registers a menu for each
    menu = dict(assistant.command_menu("pl"))
    assert menu["lang"] == "[pl] Change the language (English, Bahasa Indonesia, Polski)"

    [choose] = [e for e in await _say(assistant, "/lang") if isinstance(e, Notice)]
    assert choose.text == "[pl] Choose a language:"
    assert [b.label for row in choose.buttons for b in row] == ["English", "Bahasa Indonesia", "Polski"]

    answer = [e for e in await _say(assistant, "hello") if isinstance(e, FinalText)]
    assert answer, "the model's answer"
    [files] = [[e for e in await _say(assistant, "/export") if isinstance(e, FileReply)]]
    assert files[0].caption is not None
    assert files[0].caption.startswith("[pl:one] Your 1 conversation: ")
