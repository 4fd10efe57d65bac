"""The core stays messenger-neutral, and every language has every text."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from core.i18n import Texts, placeholders
from core.settings import DEFAULT_CONFIG_DIR

ROOT = Path(__file__).resolve().parents[2]
MESSENGER_LIBRARIES = {"telegram", "signalbot", "aiogram", "bots"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("path", sorted((ROOT / "core").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_imports_no_messenger_library(path: Path) -> None:
    assert not imported_modules(path) & MESSENGER_LIBRARIES


def test_every_language_has_every_text_with_the_same_placeholders() -> None:
    texts = Texts.load(DEFAULT_CONFIG_DIR / "locales")
    assert set(texts.languages) >= {"en", "id"}
    english = texts.keys("en")
    for lang in texts.languages:
        assert texts.keys(lang) == english, lang
        for key in english:
            assert placeholders(texts.raw(lang, key)) == placeholders(texts.raw("en", key)), (lang, key)


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [(("id-ID",), "id"), (("in",), "id"), (("en-GB",), "en"), (("fr",), "en"), ((None, "id"), "id"), ((), "en")],
)
def test_language_is_picked_from_the_messenger_code(candidates: tuple[str | None, ...], expected: str) -> None:
    assert Texts.load(DEFAULT_CONFIG_DIR / "locales").pick_language(*candidates) == expected
