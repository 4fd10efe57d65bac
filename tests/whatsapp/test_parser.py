"""Every export shape in the research, one small hand-written fixture each, table-driven.

Each fixture is also parsed with CRLF line endings and with a byte order mark, as iOS and some
Android versions write them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from core.whatsapp.parser import Message, parse_export

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass(frozen=True)
class Case:
    file: str
    order: str
    ambiguous: bool
    platform: str
    system: int
    messages: tuple[Message, ...]


def M(ts: str, sender: str, text: str = "", **flags: object) -> Message:
    """Expected message; ``line`` is not compared."""
    return Message(datetime.fromisoformat(ts), sender, text, **flags)  # type: ignore[arg-type]


CASES = [
    Case(
        "android_en_gb_24h.txt",
        "dmy",
        False,
        "android",
        2,
        (
            M("2024-01-12 14:03", "Dana", "Hi! Can you plan a trip?"),
            M(
                "2024-01-12 14:04",
                "ChatGPT",
                "Sure. Here is a plan:\n\n1. Day one: museum\n2. Day two: 13/01/2024 is a Saturday\n"
                "[12/01/2024, 14:03:00] Quote: pasted from another export",
            ),
            M("2024-01-12 14:05", "Dana", "what about this place?", media="media"),
            M("2024-01-12 14:06", "Dana", deleted=True, deleted_by_exporter=True),
            M("2024-01-12 14:07", "Dana", "Thanks, that helps", edited=True),
            M("2024-01-13 09:00", "Dana", media="image", attachment="IMG-20240113-WA0001.jpg"),
            M("2024-01-13 09:01", "ChatGPT", "Nice photo!"),
        ),
    ),
    Case(
        "android_en_us_12h_nnbsp.txt",
        "mdy",
        False,
        "android",
        1,
        (
            M("2024-01-12 14:03", "Sam", "what's 12*12?"),
            M("2024-01-12 14:03", "+1 (800) 242-8478", "12 × 12 = 144."),
            M("2024-01-12 23:59", "Sam", "and at midnight?"),
            M("2024-01-13 00:00", "+1 (800) 242-8478", "It's 12:00 AM - a new day."),
            M("2024-01-13 12:30", "Sam", media="voice", attachment="PTT-20240113-WA0001.opus"),
        ),
    ),
    Case(
        "android_en_in_12h_lower.txt",
        "dmy",
        False,
        "android",
        0,
        (
            M("2023-10-09 11:11", "Priya", media="media"),
            M("2023-10-09 13:05", "ChatGPT", "I can't see images here."),
            M("2023-10-25 21:00", "Priya", "ok"),
        ),
    ),
    Case(
        "android_en_ca_ymd.txt",
        "ymd",
        False,
        "android",
        0,
        (
            M("2019-08-06 07:03", "Akshay", "Hello"),
            M("2019-08-06 19:04", "ChatGPT", "Hi Akshay!\nLine two"),
            M("2019-08-07 12:15", "Akshay", "2019-08-07 is today"),
        ),
    ),
    Case(
        "android_es_ampm.txt",
        "dmy",
        False,
        "android",
        0,
        (
            M("2017-06-20 20:28", "Michelle", "hola"),
            M("2017-06-21 09:05", "ChatGPT", "¡Hola! ¿En qué puedo ayudarte?"),
            M("2017-06-21 00:01", "Michelle", deleted=True),
        ),
    ),
    Case(
        "android_de.txt",
        "dmy",
        False,
        "android",
        1,
        (
            M("2024-01-12 14:03", "Jonas", "Hallo"),
            M("2024-01-12 14:04", "ChatGPT", "Hallo Jonas!"),
            M("2024-01-13 08:00", "Jonas", media="media"),
            M("2024-01-13 08:01", "Jonas", deleted=True),
            M("2024-01-13 08:02", "Jonas", "Korrigiert", edited=True),
        ),
    ),
    Case(
        "android_cs_nocomma.txt",
        "dmy",
        False,
        "android",
        0,
        (
            M("2024-01-12 14:03", "Petr", "Ahoj"),
            M("2024-01-12 14:04", "ChatGPT", "Dobrý den!"),
            M("2024-01-14 09:00", "Petr", "Díky"),
        ),
    ),
    Case(
        "android_nl_dash.txt",
        "dmy",
        False,
        "android",
        1,
        (
            M("2022-03-18 14:56", "Daan", "Hallo"),
            M("2022-03-18 15:10", "ChatGPT", "Onderschrift", media="media"),
        ),
    ),
    Case(
        "android_id_dotted.txt",
        "dmy",
        False,
        "android",
        2,
        (
            M("2024-07-24 09:43", "Budi", "Halo, apa kabar?"),
            M(
                "2024-07-24 09:44",
                "ChatGPT",
                "Halo Budi! Kabar baik.\nAda yang bisa saya bantu?\n31/02/24 10.00 - Catatan: tanggal salah",
            ),
            M("2024-07-24 13:45", "Budi", media="media"),
            M("2024-07-24 13:46", "Budi", deleted=True),
            M("2024-07-24 13:47", "Budi", deleted=True, deleted_by_exporter=True),
            M("2024-07-24 13:48", "Budi", "Jam 13.45 tadi", edited=True),
        ),
    ),
    Case(
        "ios_en_12h.txt",
        "mdy",
        False,
        "ios",
        2,
        (
            M("2024-01-12 14:03:20", "Alex", "Tell me a joke"),
            M(
                "2024-01-12 14:03:25",
                "ChatGPT",
                "Why did the scarecrow win an award?\nBecause he was outstanding in his field! 🌾",
            ),
            M("2024-01-12 14:04:00", "Alex", media="image"),
            M(
                "2024-01-12 14:05:00",
                "Alex",
                media="image",
                attachment="00000012-PHOTO-2024-01-12-14-05-00.jpg",
            ),
            M("2024-01-13 09:00:00", "Alex", deleted=True, deleted_by_exporter=True),
            M("2024-01-13 09:01:00", "Alex", "Fixed typo", edited=True),
            M("2024-01-13 09:02:00", "Alex", media="document", attachment="Resume.pdf"),
        ),
    ),
    Case(
        "ios_id_region.txt",
        "dmy",
        False,
        "ios",
        1,
        (
            M("2021-01-26 21:05:53", "Siti", "Selamat malam"),
            M("2021-01-26 21:06:10", "ChatGPT", "Selamat malam, Siti!"),
            M("2021-01-26 21:07:00", "Siti", media="image"),
            M("2021-01-27 07:00:01", "ChatGPT", deleted=True),
        ),
    ),
    Case(
        "ios_de.txt",
        "dmy",
        False,
        "ios",
        0,
        (
            M("2019-06-20 15:58:47", "Lena", "Hey 👋"),
            M("2019-06-20 15:59:07", "ChatGPT", "Hallo Lena!"),
            M(
                "2019-06-21 08:00:00",
                "Lena",
                media="audio",
                attachment="00000003-AUDIO-2019-06-21-08-00-00.opus",
            ),
        ),
    ),
    Case(
        "ios_zh_ymd.txt",
        "ymd",
        False,
        "ios",
        0,
        (
            M("2023-05-04 16:17:13", "小明", "你好"),
            M("2023-05-04 16:18:00", "ChatGPT", "你好！有什么可以帮你的吗？"),
        ),
    ),
    Case(
        "old_ios_colon.txt",
        "mdy",
        False,
        "ios",
        0,
        (
            M("2016-07-01 17:13:36", "Sophia H.", "So hier mal die versprochene Gruppe 😉"),
            M("2016-07-01 17:14:00", "ChatGPT", "Danke!"),
            M("2016-07-13 09:00:00", "Sophia H.", "Test: with colon"),
        ),
    ),
    Case(
        "android_day_periods.txt",
        "dmy",
        True,
        "android",
        0,
        (
            M("2021-01-03 09:15", "Wolfgang", "Morning"),
            M("2021-01-03 15:07", "ChatGPT", "Afternoon"),
            M("2021-01-03 22:30", "Wolfgang", "Night"),
        ),
    ),
    Case(
        "ios_ar.txt",
        "dmy",
        False,
        "ios",
        1,
        (
            M("2022-03-18 14:57:00", "Omar", "مرحبا"),
            M("2022-03-18 14:58:00", "+1 (800) 242-8478", "أهلاً عمر"),
        ),
    ),
    Case(
        "ios_buddhist.txt",
        "mdy",
        False,
        "ios",
        0,
        (
            M("2022-03-18 14:56:01", "Nok", "สวัสดี"),
            M("2022-03-18 14:57:00", "ChatGPT", "สวัสดีครับ"),
        ),
    ),
    Case(
        "android_marks.txt",
        "dmy",
        False,
        "android",
        0,
        (
            M("2024-01-12 14:03", "Dana", "first"),
            M("2024-01-12 14:04", "ChatGPT", "second\u00a0with\u00a0spaces"),
            M("2024-01-13 14:05", "Dana", "third"),
        ),
    ),
]


def _variants(text: str) -> list[tuple[str, str]]:
    return [("lf", text), ("crlf", text.replace("\n", "\r\n")), ("bom", "\ufeff" + text)]


def _strip_line(m: Message) -> Message:
    return Message(m.timestamp, m.sender, m.text, m.media, m.attachment, m.deleted, m.deleted_by_exporter, m.edited)


def test_every_fixture_has_a_case() -> None:
    assert sorted(p.name for p in FIXTURES.glob("*.txt")) == sorted(c.file for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.file for c in CASES])
@pytest.mark.parametrize("variant", ["lf", "crlf", "bom"])
def test_fixture_parses_to_expected_messages(case: Case, variant: str) -> None:
    raw = (FIXTURES / case.file).read_text(encoding="utf-8")
    text = dict(_variants(raw))[variant]
    chat = parse_export(text)
    assert tuple(_strip_line(m) for m in chat.messages) == case.messages
    assert len(chat.system) == case.system
    assert chat.date_order == case.order
    assert chat.date_order_ambiguous is case.ambiguous
    assert chat.platform == case.platform
    assert chat.senders == tuple(dict.fromkeys(m.sender for m in case.messages))


def test_system_lines_are_classified() -> None:
    chat = parse_export((FIXTURES / "ios_en_12h.txt").read_text(encoding="utf-8"))
    assert [(s.kind, s.sender) for s in chat.system] == [
        ("encryption", "ChatGPT"),
        ("business", "ChatGPT"),
    ]
    chat = parse_export((FIXTURES / "android_id_dotted.txt").read_text(encoding="utf-8"))
    assert [(s.kind, s.sender) for s in chat.system] == [("encryption", None), ("security_code", None)]


def test_header_line_numbers_point_into_the_file() -> None:
    chat = parse_export((FIXTURES / "android_en_gb_24h.txt").read_text(encoding="utf-8"))
    assert [m.line for m in chat.messages] == [3, 4, 9, 11, 12, 13, 14]


def test_ambiguous_dates_use_the_default_and_say_so() -> None:
    text = "03/01/2024, 10:00 - Dana: a\n04/01/2024, 10:00 - ChatGPT: b\n"
    chat = parse_export(text)
    assert (chat.date_order, chat.date_order_ambiguous) == ("dmy", True)
    assert chat.messages[0].timestamp == datetime(2024, 1, 3, 10, 0)
    us = parse_export(text, default_order="mdy")
    assert us.messages[0].timestamp == datetime(2024, 3, 1, 10, 0)
    confirmed = parse_export(text, date_order="mdy")
    assert (confirmed.date_order, confirmed.date_order_ambiguous) == ("mdy", False)


def test_ambiguous_dates_prefer_the_order_that_runs_forward() -> None:
    # Day-first reads 1 Feb, 2 Jan, 3 Jan (one step back); month-first reads 2 Jan, 1 Feb, 1 Mar.
    text = "01/02/2024, 10:00 - Dana: a\n02/01/2024, 10:00 - ChatGPT: b\n03/01/2024, 10:00 - Dana: c\n"
    chat = parse_export(text)
    assert (chat.date_order, chat.date_order_ambiguous) == ("mdy", True)


def test_order_is_decided_from_the_whole_file_not_line_by_line() -> None:
    # The first lines fit either order; only the last one proves day-first.
    text = "05/06/2024, 10:00 - Dana: a\n05/06/2024, 10:01 - ChatGPT: b\n20/06/2024, 09:00 - Dana: c\n"
    chat = parse_export(text)
    assert [m.timestamp.date().isoformat() for m in chat.messages] == ["2024-06-05"] * 2 + ["2024-06-20"]


def test_text_without_headers_gives_an_empty_chat() -> None:
    chat = parse_export("hello\nworld\n")
    assert chat.messages == () and chat.senders == () and chat.platform is None


def test_empty_body_and_view_once() -> None:
    chat = parse_export("1/29/18, 11:59 PM - Carol:\n1/29/18, 11:59 PM - Bob: null\n")
    assert [(m.sender, m.text, m.media) for m in chat.messages] == [("Carol", "", None), ("Bob", "", "view_once")]


def test_out_of_range_12_hour_values_from_real_files() -> None:
    chat = parse_export("1/29/18, 23:59 PM - Bob: a\n1/30/18, 00:04 AM - Bob: b\n1/30/18, 12:10 AM - Bob: c\n")
    assert [m.timestamp.strftime("%H:%M") for m in chat.messages] == ["23:59", "00:04", "00:10"]
