"""What Signal clients do that the adapter must allow for (issue 12, point 2).

Signal-iOS drops every incoming edit of a message after its 100th (the fake models it in
``FakeSignalServer.seen``): a long answer streamed by edits must still end with its full text
on the phone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from bots.signal.reply import MAX_EDITS
from core.types import FinalText, Incoming, PartialAnswer, ReplyEvent, StreamStart
from tests.bots.standin import StandInCore
from tests.bots.test_signal_bot import MakeAdapter, answered, fake, make_adapter  # noqa: F401 (fixtures)
from tests.fakes.signal_server import (
    ALICE_NUMBER,
    ALICE_UUID,
    EDIT_WINDOW_MS,
    MAX_RECEIVE_EDITS,
    FakeSignalServer,
)


class SlowStream(StandInCore):
    """A core streaming one long answer in ``pieces`` small, spaced deltas."""

    def __init__(self, pieces: int) -> None:
        super().__init__()
        self.words = [f"w{i}" for i in range(pieces)]

    async def handle(self, msg: Incoming) -> AsyncIterator[ReplyEvent]:
        yield StreamStart()
        for i in range(1, len(self.words) + 1):
            yield PartialAnswer(" ".join(self.words[:i]))
            await asyncio.sleep(0.004)
        yield FinalText(" ".join(self.words))


async def test_a_long_stream_stays_under_the_client_edit_cap_and_ends_complete(
    fake: FakeSignalServer, make_adapter: MakeAdapter  # noqa: F811
) -> None:
    core = SlowStream(260)
    await make_adapter(core, edit_interval=0.001)
    await fake.push_message(ALICE_UUID, ALICE_NUMBER, "tell me everything")
    await answered(fake, ALICE_UUID)
    full = " ".join(core.words)
    assert fake.seen(ALICE_UUID)[-1] == full, "the phone must end up showing the whole answer"
    edits = [b for b in fake.sent if b.get("edit_timestamp") is not None]
    per_message: dict[int, int] = {}
    for body in edits:
        per_message[int(body["edit_timestamp"])] = per_message.get(int(body["edit_timestamp"]), 0) + 1
    assert per_message and max(per_message.values()) <= MAX_EDITS < MAX_RECEIVE_EDITS
    assert full in fake.seen(ALICE_UUID)


def test_the_fake_phone_drops_edits_past_the_cap(fake: FakeSignalServer) -> None:  # noqa: F811
    body = {"recipients": [ALICE_UUID], "number": fake.number, "message": "v0"}
    fake.sent.append(dict(body))
    fake.sent_timestamps.append(1000)
    for i in range(1, MAX_RECEIVE_EDITS + 3):
        fake.sent.append({**body, "message": f"v{i}", "edit_timestamp": 1000})
        fake.sent_timestamps.append(1000 + i)
    assert fake.seen(ALICE_UUID) == [f"v{MAX_RECEIVE_EDITS}"]


def test_the_fake_phone_drops_edits_after_48_hours(fake: FakeSignalServer) -> None:  # noqa: F811
    body = {"recipients": [ALICE_UUID], "number": fake.number, "message": "v0"}
    fake.sent += [dict(body), {**body, "message": "v1", "edit_timestamp": 1000}]
    fake.sent += [{**body, "message": "too late", "edit_timestamp": 1000}]
    fake.sent_timestamps += [1000, 2000, 1000 + EDIT_WINDOW_MS + 1]
    assert fake.seen(ALICE_UUID) == ["v1"]
