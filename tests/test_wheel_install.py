"""Install Ferry as a user does: build the wheel, ``pip install`` it into a clean virtual environment
(dependencies resolved by pip, not taken from this checkout), then start ``ferry telegram`` and
``ferry signal`` from an empty folder with no ``FERRY_CONFIG_DIR``. Each must answer a message.

The source tree is never on the path of these processes: the catalogue and the texts must come
from the installed package.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bots.test_processes import free_port, wait_healthy
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.signal_server import ALICE_NUMBER, ALICE_UUID, BOT_NUMBER, FakeSignalServer
from tests.fakes.telegram_server import TOKEN, FakeTelegram

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str | Path, cwd: Path) -> None:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{args}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` folder of a fresh venv with only the built wheel (and what it depends on) installed."""
    base = tmp_path_factory.mktemp("wheel")
    # Build from what git tracks, as a fresh clone would: a stale build/ folder here must not leak in.
    source = base / "source"
    source.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True).stdout
    for name in filter(None, archive.decode().split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", base / "dist", source, cwd=base)
    (wheel,) = (base / "dist").glob("ferry-*.whl")
    run(sys.executable, "-m", "venv", base / "venv", cwd=base)
    run(base / "venv" / "bin" / "pip", "install", "--quiet", wheel, cwd=base)
    return base / "venv" / "bin"


def user_env(bin_dir: Path, data: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FERRY_", "OPENAI_", "TELEGRAM_", "SIGNAL_"))}
    env.pop("PYTHONPATH", None)
    return {**env, "PATH": f"{bin_dir}:{env['PATH']}", "FERRY_DATA_DIR": str(data), "FERRY_ACCESS": "open", **extra}


async def start(bin_dir: Path, command: str, cwd: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(bin_dir / "ferry"), command, cwd=cwd, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 20)
    assert proc.returncode == 0


def test_the_wheel_ships_the_catalogue_and_the_texts(installed: Path, tmp_path: Path) -> None:
    code = (
        "from core.settings import Settings; from core.catalogue import Catalogue; from core.i18n import Texts; "
        "s = Settings.load({}); Catalogue.load(s.config_dir / 'models.toml'); "
        "t = Texts.load(s.config_dir / 'locales'); print(s.config_dir)"
    )
    result = subprocess.run(
        [str(installed / "python"), "-c", code], cwd=tmp_path, env=user_env(installed, tmp_path),
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert str(ROOT) not in result.stdout, "the installed package must not read config/ from the checkout"


async def test_ferry_telegram_from_a_plain_install_answers(installed: Path, tmp_path: Path) -> None:
    port = free_port()
    async with FakeOpenAI() as ai, FakeTelegram() as tg:
        env = user_env(
            installed, tmp_path / "data", TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_URL=tg.root,
            OPENAI_BASE_URL=ai.base_url, OPENAI_API_KEY="sk-test", FERRY_HEALTH_PORT=str(port),
        )
        proc = await start(installed, "telegram", tmp_path, env)
        try:
            await wait_healthy(port, proc)
            tg.push_text(7, "hello from a wheel")
            await tg.wait_until(lambda: len(tg.log(7).messages) == 1, within=20)
            assert tg.log(7).messages[0].text == "You said: hello from a wheel"
        finally:
            await stop(proc)
    assert proc.stderr is not None
    assert "event loop: uvloop" in (await proc.stderr.read()).decode()  # a dependency of a plain install


async def test_ferry_signal_from_a_plain_install_answers(installed: Path, tmp_path: Path) -> None:
    port = free_port()
    async with FakeOpenAI() as ai, FakeSignalServer() as fake:
        env = user_env(
            installed, tmp_path / "data", SIGNAL_SERVICE=fake.service, SIGNAL_PHONE_NUMBER=BOT_NUMBER,
            OPENAI_BASE_URL=ai.base_url, OPENAI_API_KEY="sk-test", FERRY_HEALTH_PORT=str(port),
        )
        proc = await start(installed, "signal", tmp_path, env)
        try:
            await wait_healthy(port, proc)
            await fake.push_message(ALICE_UUID, ALICE_NUMBER, "hello from a wheel")
            await fake.wait_for(lambda: any("You said: hello from a wheel" in str(s) for s in fake.sent))
        finally:
            await stop(proc)
    assert proc.stderr is not None
    assert "event loop: uvloop" in (await proc.stderr.read()).decode()  # a dependency of a plain install
