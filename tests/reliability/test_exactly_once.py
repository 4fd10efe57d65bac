"""Issue 11's last window: the bot dies between Telegram accepting its final ``sendMessage`` and
recording that it was sent. The Bot API has no idempotent send, so the restart must find out
whether the message arrived (``bots/telegram/probe.py``) instead of sending it again or not at all.

The real ``ferry telegram`` process is SIGKILLed by the fake Bot API server itself, at exactly that
moment: after it carried out the call (the message is in the chat) and before it answers; or, for
the other side of the window, as the call arrives and is not carried out.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from tests.fakes.telegram_server import Call, FakeTelegram
from tests.reliability.harness import BotProcess, base_env, wait_until
from tests.reliability.model import SlowModel, answer_for

PERSON = 5001
GROUP = -1001


async def _round(
    tmp_path: Path, *, carried_out: bool, others: int = 0, chat: int = PERSON, answered_first: bool = False
) -> tuple[FakeTelegram, list[str]]:
    """One question from PERSON; the process dies at its answer's ``sendMessage`` (in a group: its
    placeholder's; with ``answered_first``, once the core has recorded the whole answer while the
    placeholder's reply is held back); returns what the chat shows."""
    async with FakeTelegram() as tg, SlowModel(chunk_delay=0.05) as model:
        env = base_env(model, tmp_path / "data")
        env.update(TELEGRAM_BOT_TOKEN=tg.token, TELEGRAM_API_URL=tg.root)
        bot = BotProcess("telegram", env, tmp_path / "telegram.log")
        killed = asyncio.Event()
        answer = answer_for("c1m0")
        fatal = answer if chat == PERSON else "…"

        def kill(call: Call) -> None:
            if killed.is_set() or call.method != "sendMessage" or int(call.params["chat_id"]) != chat:
                return
            if fatal in str(call.params.get("text", "")) and bot.proc is not None:
                if answered_first:
                    killed.set()
                    asyncio.get_running_loop().create_task(kill_once_answered(bot.proc.pid))
                    return
                os.kill(bot.proc.pid, signal.SIGKILL)  # before the answer leaves the server
                killed.set()
                if not carried_out:
                    tg.fail("sendMessage", 500, "Internal Server Error: the connection was lost")

        async def kill_once_answered(pid: int) -> None:
            intake = tmp_path / "data" / "intake"
            await wait_until(lambda: any('"status":"answered"' in f.read_text() for f in intake.rglob("*.jsonl")), 60)
            os.kill(pid, signal.SIGKILL)

        if answered_first:
            tg.stall("sendMessage", 30)  # the placeholder's reply comes too late for the process
        (tg.listeners if carried_out else tg.arrivals).append(kill)
        await bot.start()
        await tg.wait_until(lambda: any(c.method == "getUpdates" for c in tg.calls), 60)
        if chat == PERSON:
            tg.push_text(PERSON, "question c1m0: what do you think?")
        else:
            tg.push_group_text(chat, PERSON, "question c1m0: what do you think?", mention=True)
        for i in range(others):  # other people keep the bot busy after the restart
            tg.push_text(6000 + i, f"question c{100 + i}m0: and you?")
        await asyncio.wait_for(killed.wait(), 60)
        assert bot.proc is not None
        await asyncio.wait_for(bot.proc.wait(), 90)
        await bot.start()
        restarted = bot.started_at

        def touched() -> bool:  # the restart looked or sent in the person's chat
            methods = ("editMessageText", "sendMessage")
            return any(c.at > restarted and c.method in methods and int(c.params["chat_id"]) == chat for c in tg.calls)

        try:
            assert await wait_until(touched, 60)
            assert await wait_until(lambda: answer in tg.log(chat).texts, 60)
            await asyncio.sleep(2.0)  # a second copy would come now
        finally:
            await bot.stop()
        return tg, tg.log(chat).texts


async def test_an_answer_accepted_just_before_the_kill_is_not_sent_again(tmp_path: Path) -> None:
    tg, texts = await _round(tmp_path, carried_out=True)
    assert texts == [answer_for("c1m0")]
    probes = [c for c in tg.calls if c.method == "editMessageText" and int(c.params["chat_id"]) == PERSON]
    assert probes and probes[-1].status == 400, "the restart asked whether it had arrived"


async def test_an_answer_accepted_just_before_the_kill_is_found_among_other_chats_ids(tmp_path: Path) -> None:
    # Other private chats take ids from the same counter meanwhile: the search steps over theirs.
    _, texts = await _round(tmp_path, carried_out=True, others=3)
    assert texts == [answer_for("c1m0")]


async def test_an_answer_that_never_arrived_is_sent_after_the_kill(tmp_path: Path) -> None:
    _, texts = await _round(tmp_path, carried_out=False)
    assert texts == [answer_for("c1m0")]


async def test_a_group_placeholder_sent_just_before_the_kill_does_not_stay(tmp_path: Path) -> None:
    # The placeholder reached the group but the process died before recording its id: the redo's
    # own placeholder becomes the answer and the earlier one is deleted, no "…" left behind.
    tg, texts = await _round(tmp_path, carried_out=True, chat=GROUP)
    assert texts == [answer_for("c1m0")]
    placeholders = [m for m in tg.log(GROUP).messages if m.edits == [] and m.raw == "…"]
    assert placeholders and all(m.deleted for m in placeholders)


async def test_a_group_placeholder_left_by_a_kill_after_the_answer_was_recorded_does_not_stay(tmp_path: Path) -> None:
    # The core recorded the whole answer while the placeholder's id never reached the process: the
    # restart hands the recorded answer over, and a new placeholder shows it; the old one goes.
    _, texts = await _round(tmp_path, carried_out=True, chat=GROUP, answered_first=True)
    assert texts == [answer_for("c1m0")]
