"""The model catalogue: context window, output limit, prices and capabilities per model family.

The data lives in ``config/models.toml``. Any model name gets an answer: dated, tagged or
provider-prefixed names are matched to their family by the longest prefix, and a name that
matches nothing gets safe defaults, so an unknown model never crashes the bot.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "config" / "models.toml"
"""Where the catalogue shipped with Ferry lives (``config/models.toml`` at the repository root)."""

_PER_MILLION = 1_000_000


@dataclass(frozen=True)
class ModelInfo:
    """What Ferry knows about one model family. Prices are USD per million tokens."""

    name: str
    context_window: int = 8192
    max_output_tokens: int = 2048
    input_price: float = 0.0
    output_price: float = 0.0
    vision: bool = False
    tools: bool = False
    image_price: float = 0.0  # USD per generated image (image models)
    audio_price: float = 0.0  # USD per minute of audio (transcription models)
    known: bool = True  # False when the values are the catalogue's defaults for an unknown name

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """The price in USD of one request with these token counts."""
        return (max(prompt_tokens, 0) * self.input_price + max(completion_tokens, 0) * self.output_price) / _PER_MILLION


_FIELD_TYPES: dict[str, type] = {
    "context_window": int,
    "max_output_tokens": int,
    "input_price": float,
    "output_price": float,
    "vision": bool,
    "tools": bool,
    "image_price": float,
    "audio_price": float,
}


def _check_fields(where: str, table: Mapping[str, Any]) -> dict[str, Any]:
    """Validate one TOML table into ModelInfo keyword arguments, with a clear message on error."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        expected = _FIELD_TYPES.get(key)
        if expected is None:
            raise ValueError(f"{where}: unknown key {key!r} (known: {', '.join(_FIELD_TYPES)})")
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ValueError(f"{where}: {key} must be {expected.__name__}, not {value!r}")
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            raise ValueError(f"{where}: {key} must not be negative")
        out[key] = value
    if "context_window" in out and out["context_window"] <= 0:
        raise ValueError(f"{where}: context_window must be positive")
    return out


def _is_boundary(name: str, at: int) -> bool:
    """True when a prefix of length ``at`` ends a word in ``name`` ("gpt-4" in "gpt-4-0613", not "gpt-4o")."""
    return at == len(name) or not name[at].isalnum()


def normalise(name: str) -> str:
    """The part of a model name that identifies the family: lower case, no provider prefix."""
    return name.strip().lower().rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Catalogue:
    """Model families by name, with the defaults used for names that match none of them."""

    models: Mapping[str, ModelInfo]
    default: ModelInfo = ModelInfo(name="default", known=False)

    @classmethod
    def load(cls, path: str | Path = DEFAULT_PATH) -> Catalogue:
        """Read a catalogue TOML file; raises ValueError (with the file name) when it is malformed."""
        path = Path(path)
        try:
            with path.open("rb") as f:
                data = tomllib.load(f)
        except OSError as exc:
            raise ValueError(f"cannot read the model catalogue {path}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"the model catalogue {path} is not valid TOML: {exc}") from exc
        return cls.from_dict(data, where=str(path))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "catalogue") -> Catalogue:
        """Build a catalogue from the parsed TOML shape (``[default]`` and ``[models.<name>]``)."""
        default_table = data.get("default", {})
        models_table = data.get("models", {})
        if not isinstance(default_table, Mapping) or not isinstance(models_table, Mapping):
            raise ValueError(f"{where}: [default] and [models] must be tables")
        default = replace(ModelInfo(name="default", known=False), **_check_fields(f"{where} [default]", default_table))
        base = {f.name: getattr(default, f.name) for f in fields(ModelInfo)}
        models: dict[str, ModelInfo] = {}
        for name, table in models_table.items():
            if not isinstance(table, Mapping):
                raise ValueError(f"{where}: [models.{name!r}] must be a table")
            values = base | _check_fields(f"{where} [models.{name!r}]", table)
            values |= {"name": name, "known": True}
            models[normalise(name)] = ModelInfo(**values)
        return cls(models=models, default=default)

    @classmethod
    def of(cls, infos: Iterable[ModelInfo], default: ModelInfo | None = None) -> Catalogue:
        """Build a catalogue from ModelInfo values (handy in tests)."""
        return cls(
            models={normalise(i.name): i for i in infos},
            default=default or ModelInfo(name="default", known=False),
        )

    def get(self, name: str) -> ModelInfo:
        """The entry for ``name``: exact, else the longest family prefix, else the defaults.

        Never raises: an unknown name gets the defaults with ``name`` set to the name asked for
        and ``known=False``.
        """
        key = normalise(name)
        found = self.models.get(key)
        if found is not None:
            return found
        best: str | None = None
        for family in self.models:
            if key.startswith(family) and _is_boundary(key, len(family)) and (best is None or len(family) > len(best)):
                best = family
        if best is not None:
            return self.models[best]
        return replace(self.default, name=name, known=False)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name).known

    def names(self) -> list[str]:
        """The family names in the catalogue, sorted."""
        return sorted(info.name for info in self.models.values())
