"""Texts a translator can own: plural forms, numbers, money and dates written per language."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from core.assistant import Assistant
from core.i18n import DateSpan, Money, Texts, plural_categories
from core.settings import DEFAULT_CONFIG_DIR
from core.types import ChatKey, Identity, Incoming, Notice
from tests.conftest import MakeAssistant


@pytest.fixture(scope="module")
def texts() -> Texts:
    return Texts.load(DEFAULT_CONFIG_DIR / "locales")


def test_english_counts_pick_the_singular_or_the_plural(texts: Texts) -> None:
    assert texts.get("en", "import.which", count=1).startswith("I found 1 message. ")
    assert texts.get("en", "import.which", count=2).startswith("I found 2 messages. ")
    assert texts.get("en", "export.caption", count=1).startswith("Your 1 conversation: ")
    assert texts.get("en", "export.caption", count=3).startswith("Your 3 conversations: ")
    assert texts.get("en", "budget.tokens", count=1) == "1 token"
    assert texts.get("en", "budget.tokens", count=0) == "0 tokens"
    assert texts.get("en", "usage.day", tokens=1, cost=Money(0), count=1) == "*Today:* 1 token · $0.00"
    assert texts.get("en", "link.too_many", minutes=1, count=1).endswith("try again in 1 minute.")


def test_indonesian_has_no_plural_inflection(texts: Texts) -> None:
    assert plural_categories("id") == {"other"}
    assert plural_categories("en") == {"one", "other"}
    assert texts.get("id", "import.which", count=1).startswith("Saya menemukan 1 pesan.")
    assert texts.get("id", "import.which", count=2).startswith("Saya menemukan 2 pesan.")
    assert texts.get("id", "budget.tokens", count=1) == "1 token"


def test_digit_grouping_and_money_follow_the_language(texts: Texts) -> None:
    assert texts.get("en", "budget.tokens", count=1234) == "1,234 tokens"
    assert texts.get("id", "budget.tokens", count=1234) == "1.234 token"
    assert texts.format("en", Money(1234.5678)) == "$1,234.57"
    assert texts.format("id", Money(1234.5678)) == "US$1.234,57"
    assert texts.format("en", Money(0.00042)) == "$0.0004"
    assert texts.format("id", Money(0.00042)) == "US$0,0004"
    assert texts.format("id", 2.5) == "2,5"


def test_dates_and_ranges_use_the_languages_month_names(texts: Texts) -> None:
    day = dt.date(2026, 12, 1)
    assert texts.get("en", "chat.chats_item", title="Soup", date=day) == "Soup · Dec 1, 2026"
    assert texts.get("id", "chat.chats_item", title="Soup", date=day) == "Soup · 1 Des 2026"
    aug = DateSpan(dt.date(2026, 8, 13), dt.date(2026, 8, 14))
    assert texts.format("en", aug) == "Aug 13\u2009–\u200914, 2026"
    assert texts.format("id", aug) == "13–14 Agu 2026"
    assert texts.format("id", DateSpan(dt.date(2025, 10, 30), dt.date(2026, 1, 2))) == "30 Okt 2025–2 Jan 2026"
    assert texts.format("id", DateSpan(day, day)) == "1 Des 2026"
    resets = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    assert texts.get("id", "budget.over_day", limit="200 token", resets=resets).endswith("pada 2026-12-01 00:00 UTC.")


def test_a_placeholder_may_name_a_date_width(tmp_path: Path) -> None:
    (tmp_path / "en.toml").write_text('[t]\nday = "on {date:long}"\n', encoding="utf-8")
    (tmp_path / "id.toml").write_text('[t]\nday = "pada {date:full}"\n', encoding="utf-8")
    texts = Texts.load(tmp_path)
    assert texts.get("en", "t.day", date=dt.date(2026, 8, 17)) == "on August 17, 2026"
    assert texts.get("id", "t.day", date=dt.date(2026, 8, 17)) == "pada Senin, 17 Agustus 2026"


def test_every_locale_has_every_english_key_with_its_placeholders_and_plural_forms(texts: Texts) -> None:
    assert set(texts.languages) >= {"en", "id"}
    assert texts.problems() == []


def test_a_translators_mistakes_are_named(tmp_path: Path) -> None:
    (tmp_path / "en.toml").write_text(
        '[a]\nn = { one = "{count} cat", other = "{count} cats" }\nm = "hi {name}"\nk = "x"\n', encoding="utf-8"
    )
    (tmp_path / "id.toml").write_text('[a]\nn = { one = "{count} kucing", other = "{count} kucing" }\nm = "hai"\n')
    (tmp_path / "pl.toml").write_text('[a]\nn = "{count} koty"\nm = "{name}"\nk = "x"\n', encoding="utf-8")
    problems = Texts.load(tmp_path).problems()
    assert "id: a.k is missing" in problems
    assert "id: a.m has [], not ['name']" in problems
    assert "id: a.n has plural forms ['one', 'other'], not ['other']" in problems
    assert "pl: a.n has plural forms ['other'], not ['few', 'many', 'one', 'other']" in problems
    assert len(problems) == 4


def test_words_of_every_language_are_understood(texts: Texts) -> None:
    assert {"day", "hari"} <= texts.all_words("budget.day_words")
    assert {"month", "bulan"} <= texts.all_words("budget.month_words")
    assert {"clear", "hapus"} <= texts.all_words("instructions.clear_words")
    assert texts.get("id", "lang.name") == "Bahasa Indonesia"


async def _say_id(assistant: Assistant, text: str, sender: str) -> str:
    """What an Indonesian-speaking user on ``sender`` reads back (one notice expected)."""
    ident = Identity.parse(sender)
    msg = Incoming(sender=ident, chat=ChatKey(ident.platform, ident.id), text=text, language_code="id-ID")
    notices = [e.text async for e in assistant.handle(msg) if isinstance(e, Notice)]
    assert len(notices) == 1, notices
    return notices[0]


async def test_indonesian_command_words_and_formats_end_to_end(make_assistant: MakeAssistant) -> None:
    admin = "telegram:99"
    assistant = await make_assistant(FERRY_ADMINS=admin)
    shown = await _say_id(assistant, "/budget semua bulan 1234.5 usd", admin)
    assert shown == "Batas pemakaian untuk semua pengguna: US$1.234,50 per bulan."
    shown = await _say_id(assistant, "/budget semua hari 50000 token", admin)
    assert shown == "Batas pemakaian untuk semua pengguna: US$1.234,50 per bulan, 50.000 token per hari."
    shown = await _say_id(assistant, "/budget semua hari mati", admin)
    assert shown == "Batas pemakaian untuk semua pengguna: US$1.234,50 per bulan."
    # English words still work for an Indonesian speaker, as before.
    shown = await _say_id(assistant, "/budget global month off", admin)
    assert shown == "Batas pemakaian untuk semua pengguna: tanpa batas."

    await _say_id(assistant, "/instructions Jawab singkat.", "telegram:1")
    assert await _say_id(assistant, "/instructions hapus", "telegram:1") == "Instruksi khusus Anda sudah dihapus."
    assert (await _say_id(assistant, "/instructions", "telegram:1")).startswith("Anda belum punya instruksi khusus.")
