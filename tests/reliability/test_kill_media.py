"""A received file survives a SIGKILL of ``ferry telegram`` before it is answered (issue 15).

The kill lands after the first run has shown the document's cut note: a notice above an answer
was once marked as the final send, so the restart took the answer as delivered and never sent it.

The update is confirmed upstream once its record is durable, so after a kill Telegram never
sends it again: the restarted process answers from the record alone. A file larger than the 1 MB
the record may carry inline was once recorded without its bytes, and the answer after a restart
never saw the document. Now the file is spooled in the data folder, the record names it, and the
spool is emptied once the message is answered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from tests.fakes.telegram_server import FakeTelegram
from tests.reliability.harness import BotProcess, base_env
from tests.reliability.model import SlowModel, answer_for

SECRET = "The secret word is pelican."


async def _until(predicate: Callable[[], bool], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []


async def test_a_large_document_is_answered_after_a_kill_from_its_spooled_file(tmp_path: Path) -> None:
    document = (SECRET + "\n" + "filler line of a long report\n" * 60_000).encode()
    assert len(document) > 1 << 20  # larger than a record carries inline
    async with FakeTelegram() as tg, SlowModel(chunks=8, chunk_delay=0.5) as model:
        env = base_env(model, tmp_path / "data")
        env.update(TELEGRAM_BOT_TOKEN=tg.token, TELEGRAM_API_URL=tg.root)
        spool = tmp_path / "data" / "spool" / "telegram"
        bot = BotProcess("telegram", env, tmp_path / "telegram.log")
        await bot.start()
        try:
            await _until(lambda: any(c.method == "getUpdates" for c in tg.calls))
            tg.push_document(42, "report.md", document, "text/markdown", caption="question c1m1: the secret word?")
            # Answering has begun and the update is confirmed: Telegram will not send it again.
            await _until(lambda: model.streaming > 0 and not tg.pending_updates)
            assert len(_files(spool)) == 1
            await bot.kill()
            await bot.start()
            await _until(lambda: answer_for("c1m1") in tg.log(42).texts, within=30)
            await _until(lambda: not _files(spool), within=10)
        finally:
            await bot.stop()
    assert len(model.asked) == 2
    assert SECRET in model.asked[-1]  # the answer after the restart read the document
