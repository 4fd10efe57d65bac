"""The adapter layout: packages that shadow nothing, and signalbot's private seams checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bots.signal.seams import SUPPORTED_SIGNALBOT, SignalbotMismatch, check_signalbot

ROOT = Path(__file__).resolve().parents[2]


def test_bots_signal_and_bots_telegram_shadow_neither_the_stdlib_nor_the_library() -> None:
    # Imported as bots.signal / bots.telegram, as `python -m bots.cli` and the `ferry` script do.
    code = (
        "import bots.signal.process, bots.telegram.process, signal, telegram; "
        "assert signal.SIGINT and telegram.Bot; "
        "assert signal.__file__ != bots.signal.__file__; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "bots.cli", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "telegram" in done.stdout and "signal" in done.stdout, done.stderr


def test_the_installed_signalbot_is_one_whose_seams_we_know() -> None:
    check_signalbot()  # the pinned version passes


@pytest.mark.parametrize("version", ["2.1.0", "2.3.0", "3.0.0"])
def test_another_signalbot_stops_with_one_clear_sentence(version: str) -> None:
    with pytest.raises(SignalbotMismatch, match=rf"signalbot {version} is installed.*requirements.lock"):
        check_signalbot(version)
    assert version not in SUPPORTED_SIGNALBOT


def test_no_bots_module_is_over_400_lines() -> None:
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines()) for p in (ROOT / "bots").rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 400} == {}
