"""The edges where raw messenger data enters: one update or frame at a time, never fatally, never logged whole."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from telegram import Bot

from bots.logs import Throttled
from bots.signal.connection import usable_frame
from bots.telegram.updates import UpdateParser
from tests.fakes.signal_server import ALICE_NUMBER, ALICE_UUID, FakeSignalServer

USER = {"id": 42, "is_bot": False, "first_name": "Alice"}
CHAT = {"id": 42, "type": "private", "first_name": "Alice"}
BROKEN_POLL = {
    "id": "p1", "question": "Lunch?", "options": [{"text": "yes", "voter_count": 0}], "total_voter_count": 0,
    "is_closed": False, "is_anonymous": True, "type": "regular", "allows_multiple_answers": False,
}  # fmt: skip


def message(**extra: object) -> dict[str, object]:
    return {"message_id": 7, "date": 1700000000, "chat": CHAT, "from": USER, **extra}


@pytest.fixture
def parser() -> UpdateParser:
    return UpdateParser(Bot("123:TEST"), Throttled(logging.getLogger("bots.telegram.updates"), interval=0))


def test_a_lone_surrogate_is_replaced_so_entities_can_be_read(parser: UpdateParser) -> None:
    text = "@test_bot broken \udc00 emoji"
    raw = {"update_id": 1, "message": message(text=text, entities=[{"type": "mention", "offset": 0, "length": 9}])}
    update = parser.parse(raw)
    assert update is not None and update.message is not None
    assert update.message.text == "@test_bot broken \ufffd emoji"
    assert list(update.message.parse_entities().values()) == ["@test_bot"]


def test_a_poll_ptb_cannot_parse_is_skipped_with_one_line_without_content(
    parser: UpdateParser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert parser.parse({"update_id": 77, "message": message(poll=BROKEN_POLL)}) is None
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "77" in lines[0] and "TypeError" in lines[0]
    assert not any(word in lines[0] for word in ("Lunch", "Alice", "yes"))


def test_a_text_with_an_unreadable_part_is_answered_for_its_text(
    parser: UpdateParser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    raw = {"update_id": 78, "message": message(text="what do you think?", reply_to_message=message(poll=BROKEN_POLL))}
    update = parser.parse(raw)
    assert update is not None and update.message is not None
    assert update.message.text == "what do you think?"
    assert update.message.reply_to_message is None
    assert all("what do you think" not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("raw", [{}, {"update_id": "x"}, [], "update", {"update_id": True}])
def test_something_that_is_not_an_update_is_skipped(parser: UpdateParser, raw: object) -> None:
    assert parser.parse(raw) is None


def test_repeated_lines_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    throttled = Throttled(logging.getLogger("t"), interval=60, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="t")
    assert [throttled(logging.WARNING, "k", "failed %s", i) for i in range(5)] == [True, False, False, False, False]
    now[0] = 61
    assert throttled(logging.WARNING, "k", "failed %s", 9)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["failed 0", "failed 9 (4 more like this since the last such line)"]


async def test_a_signal_frame_is_cleaned_or_skipped_without_its_content_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with FakeSignalServer() as fake:
        frame = fake.envelope(ALICE_UUID, ALICE_NUMBER, "secret \ud83d plans")
    cleaned = usable_frame(json.dumps(frame))
    assert cleaned is not None and json.loads(cleaned)["envelope"]["dataMessage"]["message"] == "secret \ufffd plans"
    del frame["envelope"]["serverDeliveredTimestamp"]
    assert usable_frame(json.dumps(frame)) is None
    assert all("secret" not in r.getMessage() for r in caplog.records)


async def test_the_signal_link_reconnects_at_once_and_tells_when_receiving_was_down_long() -> None:
    from bots.signal.connection import ReceiveLink

    events: list[str] = []

    async def down(seconds: float) -> None:
        events.append("down")

    async def up(seconds: float) -> None:
        events.append("up")

    async with FakeSignalServer() as fake:
        link = ReceiveLink(
            f"ws://127.0.0.1:{fake.port}/v1/receive/{fake.number}", down_alert_after=0.3, on_down=down, on_up=up
        )
        frames = link.frames()

        async def first() -> str:
            return await anext(frames)

        reader = asyncio.create_task(first())
        await fake.wait_connected()
        await asyncio.sleep(1.2)  # a connection that held
        await fake.drop_websockets()
        await fake.wait_connected(2, within=2)  # made again at once
        assert events == []
        await fake.restart(down_for=1.0)  # down for longer than the alert threshold
        await fake.wait_connected(3, within=5)
        await fake.push_message(ALICE_UUID, ALICE_NUMBER, "hello")
        frame = json.loads(await asyncio.wait_for(reader, 5))
    assert events == ["down", "up"]
    assert frame["envelope"]["dataMessage"]["message"] == "hello"
