"""Issue 13's import findings, through the real Telegram adapter and `ferry import-whatsapp`."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bots.telegram.process import build_application, polling
from core.store.tinydb_store import TinyDBStore
from tests.bots.test_telegram_bot import FAST as TELEGRAM_FAST
from tests.conftest import MakeAssistant
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.telegram_server import FakeTelegram

US_EXPORT = (
    "3/4/26, 9:15\u202fPM - Dana: what should I cook tonight\n"
    "3/4/26, 9:16\u202fPM - ChatGPT: How about pasta?\n"
    "3/5/26, 8:01\u202fAM - Dana: You deleted this message\n"
    "3/7/26, 6:30\u202fPM - Dana: thanks, it was great\n"
    "3/9/26, 7:02\u202fAM - ChatGPT: Glad to hear it!\n"
)


async def test_a_guessed_date_order_is_said_and_can_be_flipped_and_the_count_is_what_is_imported(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI, tmp_path: Path
) -> None:
    assistant = await make_assistant(store=TinyDBStore(tmp_path))
    async with FakeTelegram() as tg:
        app = build_application(assistant, tg.token, tg.root, pacing=TELEGRAM_FAST)
        async with polling(app, poll_timeout=1):
            tg.push_document(42, "WhatsApp Chat with ChatGPT.txt", US_EXPORT.encode(), "text/plain")
            await tg.wait_until(lambda: len(tg.log(42).messages) == 1)
            preview = tg.log(42).messages[0]
            # Month first (a US file), said to be a guess; the deleted message is not counted.
            assert preview.text.startswith("4 messages, Mar 4\u2009–\u20099, 2026."), preview.text
            assert "I read the dates month first (the first message is from Mar 4, 2026)" in preview.text
            labels = [row[0] for row in preview.buttons]
            assert [label for label, _ in labels] == ["Import", "Swap roles", "Read dates day first", "Cancel"]

            tg.push_callback(42, labels[2][1], preview)
            await tg.wait_until(lambda: len(tg.log(42).messages) == 2)
            flipped = tg.log(42).messages[1]
            assert preview.buttons == [], "a used preview keeps no buttons: only the newest one is live"
            assert flipped.text.startswith("4 messages, Apr 3\u2009–\u2009Sep 3, 2026."), flipped.text
            assert "I read the dates" not in flipped.text  # the person decided: no longer a guess

            tg.push_callback(42, flipped.buttons[0][0][1], flipped)
            await tg.wait_until(lambda: len(tg.log(42).messages) == 3)
            assert tg.log(42).messages[2].text.startswith("Imported 4 messages")
            assert flipped.buttons == []


async def test_swap_roles_leaves_one_live_preview(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI, tmp_path: Path
) -> None:
    assistant = await make_assistant(store=TinyDBStore(tmp_path))
    async with FakeTelegram() as tg:
        app = build_application(assistant, tg.token, tg.root, pacing=TELEGRAM_FAST)
        async with polling(app, poll_timeout=1):
            tg.push_document(42, "WhatsApp Chat with ChatGPT.txt", US_EXPORT.encode(), "text/plain")
            await tg.wait_until(lambda: len(tg.log(42).messages) == 1)
            preview = tg.log(42).messages[0]
            swap = next(data for row in preview.buttons for label, data in row if label == "Swap roles")
            tg.push_callback(42, swap, preview)
            await tg.wait_until(lambda: len(tg.log(42).messages) == 2)
            swapped = tg.log(42).messages[1]
            assert "ChatGPT = «Dana», you = «ChatGPT»" in swapped.text
            live = [m for m in tg.log(42).messages if m.buttons]
            assert live == [swapped], "the old preview's buttons are gone: pressing them twice cannot import twice"


def exported_markdown(folder: Path) -> str:
    return next(folder.glob("*.md")).read_text()


async def test_the_command_line_title_uses_the_assistant_named_and_the_export_says_assistant(
    openai_server: FakeOpenAI, tmp_path: Path
) -> None:
    export = tmp_path / "_chat.txt"  # as inside an iPhone zip: the file name carries no chat name
    export.write_text(US_EXPORT.replace("ChatGPT", "Helper"), encoding="utf-8")
    environ = {**os.environ, "FERRY_DATA_DIR": str(tmp_path / "data"), "OPENAI_BASE_URL": openai_server.base_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots.cli", "import-whatsapp", str(export), "--user", "telegram:9",
        "--assistant", "Helper", env=environ, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert "into 'WhatsApp: Helper'" in out.decode(), out.decode()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots.cli", "chat", "--user", "telegram:9", env=environ, cwd=tmp_path,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    await asyncio.wait_for(proc.communicate(b"/export\n"), 60)
    markdown = exported_markdown(tmp_path)
    assert "Glad to hear it!" in markdown
    assert "**Assistant** ·" in markdown and "Assistant ()" not in markdown
