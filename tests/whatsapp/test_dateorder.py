"""Day/month order when every day in the file is 12 or less (issue 13): decided from all signals."""

from __future__ import annotations

from datetime import datetime

from core.whatsapp.parser import parse_export

US_WEEK = (
    "3/4/26, 9:15\u202fPM - ChatGPT: Hi! How can I help?\n"
    "3/5/26, 8:01\u202fAM - Dana: what should I cook tonight\n"
    "3/5/26, 8:02\u202fAM - ChatGPT: How about pasta?\n"
    "3/7/26, 6:30\u202fPM - Dana: thanks, it was great\n"
    "3/9/26, 7:02\u202fAM - ChatGPT: Glad to hear it!\n"
)


def test_a_short_us_chat_is_read_month_first_and_says_it_was_a_guess() -> None:
    chat = parse_export(US_WEEK)
    assert (chat.date_order, chat.date_order_ambiguous) == ("mdy", True)
    assert [m.timestamp.date().isoformat() for m in chat.messages] == [
        "2026-03-04", "2026-03-05", "2026-03-05", "2026-03-07", "2026-03-09",
    ]
    assert chat.messages[-1].timestamp == datetime(2026, 3, 9, 7, 2)


def test_a_24_hour_chat_with_a_european_number_is_read_day_first() -> None:
    text = (
        "03/04/2026, 21:15 - +44 7700 900123: hello\n"
        "05/04/2026, 08:01 - ChatGPT: hi there\n"
        "09/04/2026, 07:02 - +44 7700 900123: bye\n"
    )
    chat = parse_export(text)
    assert chat.date_order == "dmy" and chat.date_order_ambiguous
    assert chat.messages[0].timestamp == datetime(2026, 4, 3, 21, 15)


def test_a_north_american_number_and_us_clock_read_month_first_even_over_a_long_span() -> None:
    text = (
        "1/2/26, 9:15 PM - +1 (555) 010-0100: hello\n"
        "2/2/26, 9:16 PM - ChatGPT: hi\n"
        "3/2/26, 9:17 PM - +1 (555) 010-0100: again\n"
    )
    assert parse_export(text).date_order == "mdy"


def test_dates_after_the_files_own_time_rule_a_reading_out() -> None:
    # A 24-hour clock and a British number lean day-first, but day-first would put these in
    # February and March, after the file was written (5 January 2026).
    text = "1/2/26, 21:15 - +44 7700 900123: a\n1/3/26, 21:16 - ChatGPT: b\n"
    assert parse_export(text).date_order == "dmy"
    assert parse_export(text, not_after=datetime(2026, 1, 5)).date_order == "mdy"
