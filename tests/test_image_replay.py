"""Replay the Dockerfile without Docker: its install steps in a clean virtual environment, then
`ferry telegram` started from that environment the way the image starts it, checked by the
image's own HEALTHCHECK command against the fake Bot API.

No machine here runs a Docker engine; this proves what the image build and its start would do.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.telegram_server import TOKEN, FakeTelegram

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def stages() -> list[str]:
    return re.split(r"^FROM ", DOCKERFILE, flags=re.M)[1:]


def instructions(stage: str, keyword: str) -> list[str]:
    """The stage's instructions of one kind, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", stage)
    return [line[len(keyword) + 1 :].strip() for line in joined.splitlines() if line.startswith(keyword + " ")]


def env_of(stage: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in instructions(stage, "ENV"):
        for part in shlex.split(line):
            key, _, value = part.partition("=")
            env[key] = value
    return env


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The build stage replayed: COPY into a context folder, RUN with /opt/ferry mapped to a temp venv."""
    base = tmp_path_factory.mktemp("image")
    venv, src = base / "opt-ferry", base / "src"
    src.mkdir()
    build, run = stages()
    for copy in instructions(build, "COPY"):
        *sources, dest = copy.split()
        for source in sources:
            target = src / dest if dest not in ("./", ".") else src / source
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(ROOT / source, src / Path(source).name)
    # A Docker build sees no pip configuration of this machine: no extra indexes, no constraints.
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PIP_CONSTRAINT", None)
    for step in instructions(build, "RUN"):
        command = step.replace("/opt/ferry", str(venv))
        command = re.sub(r"^python ", f"{shlex.quote(sys.executable)} ", command)
        result = subprocess.run(command, shell=True, cwd=src, env=env, capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"RUN {step}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert not [c for c in instructions(run, "COPY") if not c.startswith("--from=build")], (
        "the run stage takes everything from the build stage: the catalogue and texts ship inside the package"
    )
    return {"venv": venv, "base": base}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


async def test_the_image_starts_ferry_telegram_and_its_healthcheck_passes(image: dict[str, Path]) -> None:
    run = stages()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FERRY_", "OPENAI_", "TELEGRAM_", "PIP_"))}
    image_env = env_of(run)
    data = image["base"] / "data"
    data.mkdir(exist_ok=True)
    port = free_port()
    image_env.update(
        PATH=f"{image['venv'] / 'bin'}:{env['PATH']}",
        FERRY_DATA_DIR=str(data),
        FERRY_HEALTH_PORT=str(port),
        FERRY_HEALTH_HOST="127.0.0.1",
    )
    entrypoint = json.loads(instructions(run, "ENTRYPOINT")[0])
    command = json.loads(instructions(run, "CMD")[0])
    healthcheck = json.loads(instructions(run, "HEALTHCHECK")[0].split("CMD ", 1)[1])
    assert [*entrypoint, *command] == ["ferry", "telegram"]
    assert "FERRY_CONFIG_DIR" not in image_env, "the image uses the catalogue and texts shipped in the package"
    before = tree(image["venv"])

    async with FakeOpenAI() as ai, FakeTelegram() as tg:
        process_env = {
            **env, **image_env, "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": tg.root,
            "OPENAI_BASE_URL": ai.base_url, "OPENAI_API_KEY": "sk-test", "FERRY_ACCESS": "open",
        }
        proc = await asyncio.create_subprocess_exec(
            str(image["venv"] / "bin" / entrypoint[0]), *command,
            env=process_env, cwd=image["base"],
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        try:
            healthy = False
            for _ in range(150):
                check = await asyncio.create_subprocess_exec(
                    *healthcheck, env=process_env,
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                )
                if await check.wait() == 0:
                    healthy = True
                    break
                assert proc.returncode is None, (await proc.stderr.read()).decode()[-2000:] if proc.stderr else ""
                await asyncio.sleep(0.2)
            assert healthy, "the HEALTHCHECK never passed"
            tg.push_text(7, "hello from the image")
            await tg.wait_until(lambda: len(tg.log(7).messages) == 1, within=20)
            assert tg.log(7).messages[0].text == "You said: hello from the image"
        finally:
            if proc.returncode is None:
                proc.terminate()
                await asyncio.wait_for(proc.wait(), 20)
    assert proc.returncode == 0
    # A read-only root filesystem: nothing was written outside the data volume.
    after = tree(image["venv"])
    assert after == before
