"""Text no encoder accepts (a lone surrogate) is cleaned at the edge: the real process still answers.

JSON carries ``"\\ud83d"`` happily and Python holds it, but neither UTF-8 nor UTF-16 can encode it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from tests.fakes.signal_server import ALICE_NUMBER, ALICE_UUID, BOT_NUMBER, FakeSignalServer
from tests.reliability.harness import BotProcess, base_env, telegram_bot
from tests.reliability.model import SlowModel, answer_for


async def test_a_lone_surrogate_is_answered_in_a_private_chat(tmp_path: Path) -> None:
    async with telegram_bot(tmp_path) as tg:
        tg.push_text(42, "question c0m0: broken emoji \ud83d here")
        await tg.wait_until(lambda: answer_for("c0m0") in tg.log(42).texts, within=30)
        tg.push_text(42, "question c0m1: and the next one")  # the stored history still works
        await tg.wait_until(lambda: answer_for("c0m1") in tg.log(42).texts, within=30)
    assert tg.log(42).texts == [answer_for("c0m0"), answer_for("c0m1")]


async def test_a_lone_surrogate_is_answered_in_a_group_that_mentions_the_bot(tmp_path: Path) -> None:
    async with telegram_bot(tmp_path) as tg:
        tg.push_group_text(-100, 43, "question c1m0: broken \udc00 too", mention=True)
        with contextlib.suppress(TimeoutError):
            await tg.wait_until(lambda: answer_for("c1m0") in tg.log(-100).texts, within=20)
    assert tg.log(-100).texts == [answer_for("c1m0")]


async def test_a_lone_surrogate_is_answered_on_signal(tmp_path: Path) -> None:
    async with FakeSignalServer() as fake, SlowModel(chunk_delay=0.01) as model:
        env = base_env(model, tmp_path / "data")
        env.update(SIGNAL_SERVICE=fake.service, SIGNAL_PHONE_NUMBER=BOT_NUMBER)
        bot = BotProcess("signal", env, tmp_path / "signal.log")
        await bot.start()
        try:
            await fake.wait_connected(within=60)
            await fake.push_message(ALICE_UUID, ALICE_NUMBER, "question c0m0: broken \ud83d emoji")
            await fake.wait_for(lambda: answer_for("c0m0") in fake.seen(ALICE_UUID), within=30)
            await fake.push_message(ALICE_UUID, ALICE_NUMBER, "question c0m1: next")
            await fake.wait_for(lambda: answer_for("c0m1") in fake.seen(ALICE_UUID), within=30)
        finally:
            await bot.stop()
    assert fake.seen(ALICE_UUID) == [answer_for("c0m0"), answer_for("c0m1")]
