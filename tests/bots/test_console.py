"""``ferry chat`` as a person runs it: a real process, the TinyDB store, the fake provider."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tests.fakes.openai_server import Error, FakeOpenAI, Reply

T = TypeVar("T")
PROMPT = "\x1b[?2004h"  # prompt_toolkit turns bracketed paste on as each prompt starts


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


# --- issue 13: the terminal chat as a real interface -------------------------------------------


def _spawn_env(server: FakeOpenAI, data_dir: Path, **env: str) -> dict[str, str]:
    return {
        **os.environ, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-test",
        "FERRY_DATA_DIR": str(data_dir), "FERRY_MODEL": "gpt-4o-mini", "TERM": "xterm", "LANG": "C.UTF-8",
        "PROMPT_TOOLKIT_NO_CPR": "1", "FERRY_MODEL_RETRIES": "0",  # pexpect does not answer the cursor position request
        **env,
    }


async def in_terminal(server: FakeOpenAI, data_dir: Path, script: Callable[[Any], T], *args: str) -> T:
    """Run ``ferry chat`` in a pseudo-terminal and drive it with ``script`` (pexpect, in a thread,
    so the fake provider keeps serving in this loop)."""
    import pexpect

    def drive() -> T:
        child = pexpect.spawn(
            sys.executable, ["-m", "bots.cli", "chat", *args],
            env=_spawn_env(server, data_dir, FERRY_MAX_MESSAGE_CHARS="30000"),
            encoding="utf-8", timeout=60, dimensions=(40, 200), cwd=str(data_dir),
        )
        child.logfile_read = (data_dir / "terminal.log").open("w")  # what the person saw, for failures
        try:
            child.expect_exact(PROMPT)
            return script(child)
        finally:
            child.close(force=True)

    return await asyncio.to_thread(drive)


async def test_in_a_terminal_a_long_paste_arrives_whole_and_markdown_is_rendered(
    openai_server: FakeOpenAI, tmp_path: Path
) -> None:
    openai_server.enqueue(Reply("This is **bold** and `code`.", chunk_size=4, chunk_delay=0.05))
    pasted = "x" * 19_990 + " the end"

    def script(child: Any) -> str:
        child.send(pasted + "\r")
        child.expect_exact("thinking…")
        child.expect_exact("code")
        child.expect_exact(PROMPT)
        answer: str = child.before
        child.sendcontrol("d")
        child.expect(pexpect_eof())
        return answer

    answer = await in_terminal(openai_server, tmp_path, script)
    assert openai_server.chat_requests[-1].messages[-1]["content"] == pasted  # not cut to 4,095
    assert "bold" in answer and "**" not in answer and "`" not in answer


def pexpect_eof() -> Any:
    import pexpect

    return pexpect.EOF


async def test_ctrl_c_at_an_empty_prompt_leaves_at_once(openai_server: FakeOpenAI, tmp_path: Path) -> None:
    def script(child: Any) -> int:
        child.sendcontrol("c")
        child.expect(pexpect_eof(), timeout=20)
        child.close()
        return int(child.exitstatus)

    assert await in_terminal(openai_server, tmp_path, script) == 0
    assert openai_server.request_count == 0


async def test_ctrl_c_during_an_answer_stops_it_and_logs_stay_out_of_the_terminal(
    openai_server: FakeOpenAI, tmp_path: Path
) -> None:
    openai_server.enqueue(Reply("word " * 400, chunk_size=5, chunk_delay=0.05), Error.server_error(503))

    def script(child: Any) -> str:
        child.send("write a lot\r")
        child.expect_exact("word word")
        child.sendcontrol("c")
        child.expect_exact(PROMPT)
        child.send("again\r")
        child.expect_exact("isn't answering")
        child.expect_exact(PROMPT)
        child.sendcontrol("d")
        child.expect(pexpect_eof())
        return str(child.before)

    seen = await in_terminal(openai_server, tmp_path, script, "--user", "telegram:77")
    assert "WARNING" not in seen and "WARNING" not in (tmp_path / "terminal.log").read_text()
    # The provider failure was logged to the log file, not into the middle of the terminal.
    assert "model gpt-4o-mini failed" in (tmp_path / "ferry-chat.log").read_text()


async def test_export_writes_the_two_files_it_announces_into_the_current_folder(
    openai_server: FakeOpenAI, tmp_path: Path
) -> None:
    folder = tmp_path / "here"
    folder.mkdir()
    environ = _spawn_env(openai_server, tmp_path / "data")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots.cli", "chat", cwd=folder, env=environ,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(b"hello\n/export\n"), 60)
    assert proc.returncode == 0, err.decode()
    written = sorted(p.suffix for p in folder.iterdir())
    assert written == [".json", ".md"]
    assert "hello" in next(folder.glob("*.md")).read_text()
    assert "Assistant ()" not in next(folder.glob("*.md")).read_text()
    assert f"Saved {folder}" in out.decode()
    assert not err.decode().strip()


async def test_menus_expire_chats_are_listed_once_and_texts_are_for_a_terminal(
    openai_server: FakeOpenAI, tmp_path: Path
) -> None:
    code, out, err = await ferry_chat(
        openai_server, tmp_path, "first topic\n/new\nsecond topic\n/chats\nsomething else\n1\n/help\n/import\n"
    )
    assert code == 0, err
    assert "Your recent conversations (type a number to continue one):" in out, out
    listing = out.split("Your recent conversations (type a number to continue one):")[1].split("\n\n")[1]
    assert listing.count("first topic") == 1 and listing.count("second topic") == 1, listing
    assert "1. second topic" in listing and "← current" in listing.splitlines()[0], listing
    # "1" after another line is a message, not a pick from the expired menu.
    assert openai_server.chat_requests[-1].messages[-1]["content"] == "1"
    assert "tap" not in out and "mention me" not in out and "Share the file" not in out
    assert "/cancel" not in out
    assert "ferry import-whatsapp FILE --user" in out


async def test_chat_as_another_identity_continues_its_history(openai_server: FakeOpenAI, tmp_path: Path) -> None:
    openai_server.enqueue(Reply("Noted: blue."))
    code, _, err = await ferry_chat(openai_server, tmp_path, "my colour is blue\n", FERRY_ACCESS="open")
    assert code == 0, err
    environ = {**_spawn_env(openai_server, tmp_path), "FERRY_ACCESS": "open"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots.cli", "chat", "--user", "telegram:4242", env=environ,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    await asyncio.wait_for(proc.communicate(b"I am on telegram\n"), 60)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots.cli", "chat", "--user", "telegram:4242", env=environ,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, err2 = await asyncio.wait_for(proc.communicate(b"what did I say?\n"), 60)
    assert proc.returncode == 0, err2.decode()
    context = [m["content"] for m in openai_server.chat_requests[-1].messages[1:]]
    assert context == ["I am on telegram", "You said: I am on telegram", "what did I say?"]


async def test_an_unusable_data_dir_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots.cli", "chat",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "FERRY_DATA_DIR": str(blocker / "data")},
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ferry: cannot use {blocker / 'data'}"), lines
