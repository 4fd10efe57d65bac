"""Building Ferry's package prints no page of packaging deprecation warnings (issue 13)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_building_the_wheel_warns_about_nothing(tmp_path: Path) -> None:
    # setuptools >= 77 prints a page about the old table form of `project.license` in every
    # build (`pip install -e .` in .ci/run included); the SPDX string form is the one it wants.
    # -v shows what the build backend prints, as a person debugging an install would see it.
    # Built from a copy: an in-tree build would leave build/ and *.egg-info in the checkout.
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "data", "build", "*.egg-info",
                                                                "__pycache__", ".*_cache", "tests", "bench"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--disable-pip-version-check",
         "-w", str(tmp_path / "wheel"), str(source)],
        capture_output=True, text=True, check=False, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "deprecat" not in output.lower(), [line for line in output.splitlines() if "eprecat" in line]
