"""The bot's own texts, one TOML file per language in ``config/locales/``.

A translator owns everything a user reads: the words, the plural forms and how numbers, sums of
money and dates look. Callers pass raw values (``count=3``, ``date=some_datetime``,
``cost=Money(0.25)``); :class:`Texts` formats them with the language's CLDR rules (Babel).

- A key whose value is a table of CLDR plural categories (``{ one = "…", other = "…" }``) is chosen
  by the ``count`` value. A language needs exactly the categories CLDR gives it (Indonesian: only
  ``other``, so a plain string does too).
- ``int`` and ``float`` values get the language's digit grouping (``1,234`` / ``1.234``).
- :class:`Money` is a sum in a currency; sums not in whole cents keep four decimals.
- ``date`` values are written with the language's month names (``medium`` unless the placeholder
  names another width: ``{date:long}``); aware ``datetime`` values are written ``yyyy-MM-dd HH:mm UTC``
  in UTC unless the placeholder names a width or a CLDR pattern (``{at:medium}``, ``{at:d MMM}``).
- :class:`DateSpan` is a range of days written as the language writes intervals.

Adding a language is adding one ``<code>.toml`` file; nothing in the code lists languages.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime, format_interval
from babel.numbers import format_decimal

log = logging.getLogger(__name__)

PLURAL_CATEGORIES = frozenset({"zero", "one", "two", "few", "many", "other"})
DATE_WIDTHS = ("short", "medium", "long", "full")
MOMENT_PATTERN = "yyyy-MM-dd HH:mm 'UTC'"  # unambiguous in every language; a text may ask for another

Entry = str | dict[str, str]
"""One text: a template, or templates by CLDR plural category."""


@dataclass(frozen=True)
class Money:
    """A sum of money for a text; :class:`Texts` writes it the language's way."""

    amount: float
    currency: str = "USD"


@dataclass(frozen=True)
class DateSpan:
    """A range of days (``first`` to ``last``, both included) for a text."""

    first: dt.date
    last: dt.date


def is_plural_table(value: object) -> bool:
    """True for a TOML table whose keys are CLDR plural categories, ``other`` among them."""
    return isinstance(value, dict) and "other" in value and set(value) <= PLURAL_CATEGORIES


def _flatten(prefix: str, data: dict[str, Any], out: dict[str, Entry]) -> None:
    for key, value in data.items():
        name = f"{prefix}{key}"
        if is_plural_table(value):
            out[name] = {cat: str(text) for cat, text in value.items()}
        elif isinstance(value, dict):
            _flatten(f"{name}.", value, out)
        else:
            out[name] = str(value)


def placeholders(template: str | Mapping[str, str]) -> set[str]:
    """The ``{name}`` fields a text expects (of all its plural forms together)."""
    forms = template.values() if isinstance(template, Mapping) else (template,)
    return {f for form in forms for _, f, _, _ in string.Formatter().parse(form) if f}


def plural_categories(lang: str) -> frozenset[str]:
    """The CLDR plural categories a language writes (always with ``other``)."""
    return frozenset(_locale(lang).plural_form.tags) | {"other"}


def _locale(lang: str) -> Locale:
    try:
        return Locale.parse(lang)
    except (UnknownLocaleError, ValueError):
        log.warning("no CLDR data for language %r; formatting as English", lang)
        return Locale.parse("en")


def available_languages(locales_dir: Path) -> tuple[str, ...]:
    """The language codes that have a ``<code>.toml`` file in the folder."""
    return tuple(sorted(path.stem for path in locales_dir.glob("*.toml")))


def format_money(money: Money, locale: Locale) -> str:
    """``$5.00``, ``$0.0011``, ``<$0.0001`` (``US$5,00`` in Indonesian): sums not in whole cents
    keep four decimals, so small sums do not read as zero and what is left not as all of it."""
    amount = money.amount
    if 0 < amount < 0.00005:
        return "<" + format_money(Money(0.0001, money.currency), locale)
    cents = amount * 100
    digits = 2 if amount >= 100 or abs(cents - round(cents)) < 1e-6 else 4
    pattern = copy.copy(locale.currency_formats["standard"])
    pattern.frac_prec = (digits, digits)
    return pattern.apply(Decimal(str(round(amount, digits))), locale, currency=money.currency, currency_digits=False)


class _Formatter(string.Formatter):
    """Fills a template, writing numbers, money and dates the way ``locale`` does."""

    def __init__(self, locale: Locale) -> None:
        self._locale = locale

    def format_field(self, value: Any, format_spec: str) -> str:
        loc = self._locale
        if isinstance(value, bool | str):
            return super().format_field(value, format_spec)
        if isinstance(value, int | float | Decimal) and not format_spec:
            return format_decimal(value, locale=loc)
        if isinstance(value, Money):
            return format_money(value, loc)
        if isinstance(value, DateSpan):
            if value.first == value.last:
                return format_date(value.last, format_spec or "medium", locale=loc)
            return format_interval(value.first, value.last, format_spec or "yMMMd", locale=loc)
        if isinstance(value, dt.datetime):
            return format_datetime(value, format_spec or MOMENT_PATTERN, tzinfo=dt.UTC, locale=loc)
        if isinstance(value, dt.date):
            return format_date(value, format_spec or "medium", locale=loc)
        return super().format_field(value, format_spec)


class Texts:
    """All languages' texts; ``get`` falls back to English, then to the key itself."""

    def __init__(self, catalogs: Mapping[str, Mapping[str, Entry]], fallback: str = "en") -> None:
        self._catalogs = {lang: dict(entries) for lang, entries in catalogs.items()}
        self._fallback = fallback

    @classmethod
    def load(cls, locales_dir: Path) -> Texts:
        """Read every ``<lang>.toml`` in the folder."""
        catalogs: dict[str, dict[str, Entry]] = {}
        for path in sorted(locales_dir.glob("*.toml")):
            with path.open("rb") as f:
                flat: dict[str, Entry] = {}
                _flatten("", tomllib.load(f), flat)
            catalogs[path.stem] = flat
        if "en" not in catalogs:
            raise FileNotFoundError(f"no en.toml in {locales_dir}")
        return cls(catalogs)

    @property
    def languages(self) -> tuple[str, ...]:
        """Every language with a texts file, sorted by code."""
        return tuple(sorted(self._catalogs))

    def keys(self, lang: str) -> set[str]:
        """The keys ``lang``'s file defines (a plural table is one key)."""
        return set(self._catalogs.get(lang, {}))

    def entry(self, lang: str, key: str) -> Entry:
        """The text as written in the file: a template, or templates by plural category."""
        return self._catalogs.get(lang, {}).get(key) or self._catalogs[self._fallback].get(key, key)

    def raw(self, lang: str, key: str) -> str:
        """The template for ``key`` (of a plural table, the ``other`` form)."""
        entry = self.entry(lang, key)
        return entry["other"] if isinstance(entry, dict) else entry

    def problems(self) -> list[str]:
        """What a translator still has to fix, against ``en``: missing or extra keys, other
        placeholders, plural forms other than the ones the language's CLDR rules need."""
        found: list[str] = []
        english = self._catalogs[self._fallback]
        for lang, catalog in sorted(self._catalogs.items()):
            needs = plural_categories(lang)
            found += [f"{lang}: {key} is missing" for key in sorted(set(english) - set(catalog))]
            found += [f"{lang}: {key} is not in {self._fallback}" for key in sorted(set(catalog) - set(english))]
            for key in sorted(set(english) & set(catalog)):
                theirs, ours = catalog[key], english[key]
                if placeholders(theirs) != placeholders(ours):
                    found.append(f"{lang}: {key} has {sorted(placeholders(theirs))}, not {sorted(placeholders(ours))}")
                if isinstance(ours, dict):
                    forms = set(theirs) if isinstance(theirs, dict) else {"other"}
                    if forms != needs:
                        found.append(f"{lang}: {key} has plural forms {sorted(forms)}, not {sorted(needs)}")
                elif isinstance(theirs, dict):
                    found.append(f"{lang}: {key} has plural forms, but {self._fallback} has none (no count given)")
        return found

    def words(self, lang: str, key: str) -> frozenset[str]:
        """A comma-separated list of words in the file, lower-cased (``"clear, hapus"``)."""
        return frozenset(w.strip().lower() for w in self.raw(lang, key).split(",") if w.strip())

    def all_words(self, key: str) -> frozenset[str]:
        """The words for ``key`` in every language, so a command works whatever language is set."""
        return frozenset().union(*(self.words(lang, key) for lang in self._catalogs))

    def format(self, lang: str, value: Any) -> str:
        """One value (number, :class:`Money`, date, :class:`DateSpan`) written the way ``lang`` does."""
        return _Formatter(_locale(lang)).format_field(value, "")

    def get(self, lang: str, key: str, **values: Any) -> str:
        """The text for ``key`` in ``lang`` with ``{placeholders}`` filled in.

        A plural key picks its form by ``values["count"]``; numbers, money and dates are
        formatted for the language."""
        if lang not in self._catalogs or key not in self._catalogs[lang]:
            lang = self._fallback if key in self._catalogs[self._fallback] else lang
        entry = self.entry(lang, key)
        locale = _locale(lang)
        if isinstance(entry, dict):
            count = values.get("count")
            category = locale.plural_form(count) if isinstance(count, int | float) else "other"
            template = entry.get(category) or entry["other"]
        else:
            template = entry
        try:
            return _Formatter(locale).vformat(template, (), values)
        except (KeyError, IndexError, ValueError, AttributeError):
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
