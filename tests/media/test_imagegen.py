"""``/image PROMPT`` end to end (issue 15): the picture from the fake ``/v1/images/generations``
arrives as a Telegram photo and a Signal attachment, and costs the catalogue's price."""

from __future__ import annotations

import base64

import pytest

from bots.telegram.process import polling
from core.assistant import Assistant
from core.budgets import Limit, with_budget
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.signal_server import ALICE_NUMBER, ALICE_UUID, FakeSignalServer
from tests.fakes.telegram_server import FakeTelegram
from tests.media.conftest import app_for


async def test_telegram_image_is_sent_as_a_photo_and_counted(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Assistant
) -> None:
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_text(42, "/image a lighthouse at dusk")
        await tg.wait_until(lambda: len(tg.log(42).photos) == 1)
    (photo,) = tg.log(42).photos
    assert photo.data.startswith(b"\x89PNG") and photo.caption == "a lighthouse at dusk"
    (asked,) = ai.media.generations
    assert (asked["model"], asked["prompt"], asked["n"], asked["size"]) == (
        "gpt-image-1", "a lighthouse at dusk", 1, "1024x1024",
    )  # fmt: skip
    (user,) = await assistant.store.list_users()
    totals = await assistant.store.usage_totals(user.id, 0)
    assert totals.by_model["gpt-image-1"][2] == pytest.approx(0.042)


async def test_telegram_image_without_a_prompt_or_refused_gets_a_sentence(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Assistant
) -> None:
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_text(42, "/image")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 1)
        tg.push_text(42, "/image something forbidden")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 2)
    usage, refused = tg.log(42).texts
    assert "/image a lighthouse" in usage
    assert "declined that description" in refused
    assert not tg.log(42).photos
    (user,) = await assistant.store.list_users()
    assert (await assistant.store.usage_totals(user.id, 0)).cost == 0


async def test_telegram_image_over_budget_is_refused_before_drawing(
    tg: FakeTelegram, ai: FakeOpenAI, assistant: Assistant
) -> None:
    async with polling(app_for(tg, assistant), poll_timeout=1):
        tg.push_text(42, "hello")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 1)
        (user,) = await assistant.store.list_users()
        await assistant.store.put_user(with_budget(user, {"day": Limit(0.01, "usd")}))  # 1 cent a day
        tg.push_text(42, "/image a cat")
        await tg.wait_until(lambda: len(tg.log(42).photos) == 1)
        tg.push_text(42, "/image another cat")
        await tg.wait_until(lambda: len(tg.log(42).messages) == 2)
    assert len(ai.media.generations) == 1  # the second was refused: the first used the budget up
    assert "budget" in tg.log(42).texts[-1]


async def test_signal_image_is_sent_as_an_attachment(
    signal: FakeSignalServer, ai: FakeOpenAI, assistant: Assistant
) -> None:
    fake = signal
    await fake.push_message(ALICE_UUID, ALICE_NUMBER, "/image a red kite")
    await fake.wait_for(lambda: any(body.get("base64_attachments") for body in fake.sent))
    body = next(b for b in fake.sent if b.get("base64_attachments"))
    header, _, encoded = body["base64_attachments"][0].rpartition("base64,")
    assert header.startswith("data:image/png") and base64.b64decode(encoded).startswith(b"\x89PNG")
    assert body["message"] == "a red kite"
