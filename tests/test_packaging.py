"""The image and compose file, proved without a Docker engine: lint, schema, and their promises."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SETTING = re.compile(r'"((?:FERRY|OPENAI|TELEGRAM|SIGNAL)_[A-Z_]+)"')


def tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; it comes with the dev extras (pip install -e '.[dev]')")
    return found


def setting_names() -> set[str]:
    return set(SETTING.findall((ROOT / "core" / "settings.py").read_text()))


@pytest.mark.parametrize("document", [".env.example", "README.md"])
def test_every_setting_is_documented(document: str) -> None:
    text = (ROOT / document).read_text()
    missing = sorted(name for name in setting_names() if name not in text)
    assert not missing, f"{document} does not mention {missing}"


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([tool("hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_follows_the_compose_specification() -> None:
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(ROOT / "docker-compose.yml")],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_promises() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.count("FROM ") == 2, "multi-stage: build and run"
    assert "slim" in text
    assert "--require-hashes" in text and "requirements.lock" in text
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and not user[-1].startswith(("root", "0")), "runs as a non-root user"
    assert 'VOLUME ["/data"]' in text and "FERRY_DATA_DIR=/data" in text
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert 'ENTRYPOINT ["ferry"]' in text


def test_compose_promises() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    tag = re.search(r"bbernhard/signal-cli-rest-api:(\d+)\.(\d+)", text)
    assert tag and (int(tag.group(1)), int(tag.group(2))) >= (0, 101)
    assert "MODE: json-rpc" in text
    public = ['- "443:443"']  # the one exception: Caddy, the HTTPS entry Telegram's webhook must reach
    assert text.count(public[0]) == 1 and text.index(public[0]) > text.index("  caddy:")
    for port in re.findall(r'- "([^"]+)"', text.replace(public[0], "")):
        assert port.startswith("127.0.0.1:"), f"port {port} must be bound to 127.0.0.1"
    assert "condition: service_healthy" in text
    assert text.count("ferry-data:/data") == 1 and "<<: *ferry" in text  # both bots share one store
    assert "restart: unless-stopped" in text and "read_only: true" in text


def test_the_lock_file_covers_every_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = {
        m.group(1).lower().replace("_", "-")
        for m in re.finditer(r"^([A-Za-z0-9_.-]+)==", (ROOT / "requirements.lock").read_text(), re.M)
    }
    for requirement in project["dependencies"]:
        name = re.split(r"[<>=!\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in locked, f"{name} is not in requirements.lock: run the uv command at its top"
