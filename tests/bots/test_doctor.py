"""``ferry doctor`` against the fake provider and messengers: what is wrong, and how to fix it."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.telegram_server import TOKEN, FakeTelegram


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def doctor(**env: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots.cli", "doctor",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **env},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def test_everything_fine_then_each_problem_named(openai_server: FakeOpenAI, tmp_path: Path) -> None:
    openai_server.models = ["gpt-4o-mini", "gpt-4o"]
    async with FakeTelegram() as telegram:
        base = {
            "OPENAI_BASE_URL": openai_server.base_url,
            "OPENAI_API_KEY": "sk-test",
            "FERRY_DATA_DIR": str(tmp_path / "data"),
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": telegram.root,
            "FERRY_MODEL_RETRIES": "0",
        }
        code, out = await doctor(**base)
        assert code == 0, out
        assert "[ok ] store:" in out
        assert "[ok ] model:" in out and "offers gpt-4o-mini" in out
        assert "[ok ] telegram: connected as @test_bot" in out
        assert "[ok ] signal: not configured" in out

        code, out = await doctor(
            **{**base, "FERRY_MODEL": "gpt-9", "TELEGRAM_BOT_TOKEN": "1:WRONG",
               "SIGNAL_SERVICE": f"127.0.0.1:{closed_port()}", "SIGNAL_PHONE_NUMBER": "+15550001"}
        )
        assert code == 1
        assert "[FAIL] model:" in out and "does not list gpt-9" in out
        assert "[FAIL] telegram: Telegram refused the token" in out
        assert "fix: copy the token again from @BotFather" in out
        assert "[FAIL] signal: cannot reach signal-cli-rest-api" in out

    code, out = await doctor(FERRY_ACCESS="sometimes")
    assert code == 1
    assert out.startswith("[FAIL] settings: FERRY_ACCESS must be one of")


async def test_doctor_says_when_the_catalogue_and_texts_cannot_be_read(tmp_path: Path) -> None:
    # Before 0.1's wheel shipped config/, a plain `pip install .` crashed both bots at start while
    # the doctor said all was well: it must check what the bots load.
    code, out = await doctor(FERRY_DATA_DIR=str(tmp_path / "data"), FERRY_CONFIG_DIR=str(tmp_path / "nowhere"))
    assert code == 1
    assert "[FAIL] config: cannot read the catalogue and texts" in out
    assert "fix: unset FERRY_CONFIG_DIR" in out

    code, out = await doctor(FERRY_DATA_DIR=str(tmp_path / "data"))
    assert "[ok ] config: model catalogue and texts (en, id)" in out


async def test_a_base_url_without_v1_or_without_scheme_gets_its_fix(openai_server: FakeOpenAI, tmp_path: Path) -> None:
    root = openai_server.base_url.removesuffix("/v1")
    base = {"OPENAI_API_KEY": "sk-test", "FERRY_DATA_DIR": str(tmp_path / "data"), "FERRY_MODEL_RETRIES": "0"}

    code, out = await doctor(**base, OPENAI_BASE_URL=root)
    assert code == 1 and "[FAIL] model:" in out
    assert f"fix: OPENAI_BASE_URL usually ends in /v1: try OPENAI_BASE_URL={root}/v1" in out

    bare = openai_server.base_url.removeprefix("http://")
    code, out = await doctor(**base, OPENAI_BASE_URL=bare)
    assert code == 1 and f"[FAIL] model: OPENAI_BASE_URL {bare} has no http:// or https://" in out
    assert f"fix: write it with its scheme: OPENAI_BASE_URL=http://{bare}" in out
