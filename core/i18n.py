"""The bot's own texts, one TOML file per language in ``config/locales/``."""

from __future__ import annotations

import logging
import string
import tomllib
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _flatten(prefix: str, data: dict[str, Any], out: dict[str, str]) -> None:
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _flatten(f"{name}.", value, out)
        else:
            out[name] = str(value)


def placeholders(template: str) -> set[str]:
    """The ``{name}`` fields a text expects."""
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


class Texts:
    """All languages' texts; ``get`` falls back to English, then to the key itself."""

    def __init__(self, catalogs: dict[str, dict[str, str]], fallback: str = "en") -> None:
        self._catalogs = catalogs
        self._fallback = fallback

    @classmethod
    def load(cls, locales_dir: Path) -> Texts:
        """Read every ``<lang>.toml`` in the folder."""
        catalogs: dict[str, dict[str, str]] = {}
        for path in sorted(locales_dir.glob("*.toml")):
            with path.open("rb") as f:
                flat: dict[str, str] = {}
                _flatten("", tomllib.load(f), flat)
            catalogs[path.stem] = flat
        if "en" not in catalogs:
            raise FileNotFoundError(f"no en.toml in {locales_dir}")
        return cls(catalogs)

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(sorted(self._catalogs))

    def keys(self, lang: str) -> set[str]:
        return set(self._catalogs.get(lang, {}))

    def raw(self, lang: str, key: str) -> str:
        return self._catalogs.get(lang, {}).get(key) or self._catalogs[self._fallback].get(key, key)

    def get(self, lang: str, key: str, **values: Any) -> str:
        """The text for ``key`` in ``lang`` with ``{placeholders}`` filled in."""
        template = self.raw(lang, key)
        try:
            return template.format(**values)
        except (KeyError, IndexError, ValueError):
            log.exception("text %s/%s could not be filled", lang, key)
            return template

    def pick_language(self, *candidates: str | None) -> str:
        """The first candidate we have texts for (``id-ID`` and ``in`` mean Indonesian)."""
        for cand in candidates:
            if not cand:
                continue
            code = cand.lower().replace("_", "-").split("-")[0]
            if code == "in":  # old ISO code some Android phones still report
                code = "id"
            if code in self._catalogs:
                return code
        return self._fallback
