"""``ferry chat`` as a person runs it: a real process, the TinyDB store, the fake provider."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.fakes.openai_server import FakeOpenAI, Reply


async def ferry_chat(server: FakeOpenAI, data_dir: Path, lines: str, **env: str) -> tuple[int, str, str]:
    environ = {
        **os.environ,
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": "sk-test",
        "FERRY_DATA_DIR": str(data_dir),
        "FERRY_MODEL": "gpt-4o-mini",
        **env,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots.cli", "chat",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=environ,
    )
    out, err = await asyncio.wait_for(proc.communicate(lines.encode()), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_chat_in_the_terminal_survives_a_restart(openai_server: FakeOpenAI, tmp_path: Path) -> None:
    openai_server.enqueue(Reply("Nice to meet you, Dana!", chunk_size=3))
    code, out, err = await ferry_chat(openai_server, tmp_path, "my name is Dana\n")
    assert code == 0, err
    assert "Nice to meet you, Dana!" in out

    code, out, err = await ferry_chat(openai_server, tmp_path, "what is my name?\n/chats\n")
    assert code == 0, err
    context = [(m["role"], m["content"]) for m in openai_server.chat_requests[-1].messages[1:]]
    assert context == [
        ("user", "my name is Dana"),
        ("assistant", "Nice to meet you, Dana!"),
        ("user", "what is my name?"),
    ]
    assert "my name is Dana" in out  # the conversation's title in /chats


async def test_the_terminal_user_is_admin_and_commands_work(openai_server: FakeOpenAI, tmp_path: Path) -> None:
    code, out, err = await ferry_chat(
        openai_server, tmp_path, "/lang id\n/help\n/bogus\n", FERRY_ACCESS="approval"
    )
    assert code == 0, err
    assert "Mulai sekarang saya berbicara dalam Bahasa Indonesia." in out
    assert "/instructions" in out
    assert "Saya tidak mengenal perintah /bogus" in out
    assert openai_server.request_count == 0


async def test_a_broken_setting_is_one_clear_line(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots.cli", "chat",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "FERRY_ACCESS": "everyone", "FERRY_DATA_DIR": str(tmp_path)},
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert err.decode().strip() == "ferry: FERRY_ACCESS must be one of open, allowlist, approval, not 'everyone'"
