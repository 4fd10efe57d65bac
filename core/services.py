"""What the built-in commands and the features may use of the core: a narrow, explicit seam.

Features get this (and a :class:`core.registry.Registry` to plug into) from the composition root,
never the assistant itself, so no feature imports the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.access import AccessControl
from core.catalogue import Catalogue
from core.i18n import Texts
from core.settings import Settings
from core.store.base import Store
from core.types import Notice


@dataclass(frozen=True)
class Services:
    """The settings, store, texts, models, access decisions and clock of one core."""

    settings: Settings
    store: Store
    texts: Texts
    catalogue: Catalogue
    access: AccessControl
    clock: Callable[[], float]

    def notice(self, lang: str, key: str, **values: Any) -> Notice:
        """One of the bot's texts as a notice; ``error.*`` texts are marked as errors."""
        return Notice(self.texts.get(lang, key, **values), is_error=key.startswith("error."))
