"""Finding a message a crash cut short (``bots/telegram/probe.py``) against the fake Bot API,
which numbers private chats from the bot account's one counter and answers edits as Telegram does."""

from __future__ import annotations

import time

from telegram import Bot
from telegram.error import BadRequest

from bots.telegram.probe import MessageIds, Search, Sending, find_sent, sending_mark
from tests.fakes.telegram_server import FakeTelegram

ANSWER = "The <b>answer</b>, as sent"


async def _bot(tg: FakeTelegram) -> Bot:
    bot = Bot(tg.token, base_url=tg.base_url, base_file_url=tg.base_file_url)
    await bot.initialize()
    return bot


async def test_the_fake_numbers_private_chats_from_one_counter_and_answers_edits_like_telegram() -> None:
    async with FakeTelegram() as tg:
        bot = await _bot(tg)
        question = tg.push_text(1, "question")
        other = await bot.send_message(2, "for someone else")
        mine = await bot.send_message(1, ANSWER, parse_mode="HTML")
        assert (question["message_id"], other.message_id, mine.message_id) == (1, 2, 3)
        answers = []
        for message_id in (1, 2, 3):
            try:
                await bot.edit_message_text(ANSWER, chat_id=1, message_id=message_id, parse_mode="HTML")
            except BadRequest as exc:  # the words are what is asserted
                answers.append(str(exc))
        assert answers == [
            "Message can't be edited",
            "Message to edit not found",
            "Message is not modified: specified new message content and reply markup are exactly the same "
            "as a current content and reply markup of the message",
        ]
        await bot.shutdown()


async def test_the_search_finds_the_message_among_other_chats_ids_and_changes_nothing() -> None:
    async with FakeTelegram() as tg:
        bot = await _bot(tg)
        question = tg.push_text(1, "question")["message_id"]
        await bot.send_message(2, "for someone else")
        tg.push_text(3, "a third person")
        sent = await bot.send_message(1, ANSWER, parse_mode="HTML")
        tg.push_text(1, "the person again")
        ids = MessageIds()
        started = time.monotonic()
        witness = await bot.send_message(4, "after the restart")
        ids.saw(4, witness.message_id, sent_at=started)
        found = await find_sent(bot, 1, ANSWER, None, question, ids, Search(patience=0.1))
        assert found == sent.message_id
        # The next part never went out: nothing of the bot's is above the part before it.
        later = await find_sent(bot, 1, "a second part", None, sent.message_id, ids, Search(patience=0.1))
        assert later is None
        assert tg.log(2).texts == ["for someone else"] and tg.log(1).texts == ["The answer, as sent"]
        assert not tg.log(1).edits and not tg.log(2).edits
        await bot.shutdown()


async def test_without_a_witness_an_idle_bot_looks_a_little_past_the_ids_it_saw() -> None:
    async with FakeTelegram() as tg:
        bot = await _bot(tg)
        question = tg.push_text(1, "question")["message_id"]
        sent = await bot.send_message(1, ANSWER, parse_mode="HTML")
        ids = MessageIds()
        ids.saw(1, question)
        search = Search(patience=0.1, slack=4)
        assert await find_sent(bot, 1, ANSWER, None, question, ids, search) == sent.message_id
        calls = len(tg.calls)
        assert await find_sent(bot, 1, "a second part", None, sent.message_id, ids, search) is None
        assert len(tg.calls) - calls == question + search.slack - sent.message_id, "up to the slack past the ids seen"
        assert not tg.log(1).edits
        await bot.shutdown()


def test_the_mark_names_the_event_the_part_and_the_floor() -> None:
    assert Sending.parse(sending_mark(2, 1, 41)) == Sending(2, 1, 41)
    assert Sending.parse("sending") is None and Sending.parse("123") is None and Sending.parse(None) is None
