"""``ferry import-whatsapp`` as an operator runs it, over the TinyDB store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.core.test_importer import EXPORT


def ferry(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FERRY_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "bots.cli", *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_import_for_an_identity_then_again_without_duplicates(tmp_path: Path) -> None:
    export = tmp_path / "WhatsApp Chat with ChatGPT.txt"
    export.write_text(EXPORT, encoding="utf-8")
    data = tmp_path / "data"

    first = ferry(data, "import-whatsapp", str(export), "--user", "telegram:42")
    assert first.returncode == 0, first.stderr
    assert "4 messages; assistant = 'ChatGPT', user = 'Dana'" in first.stdout
    assert "Imported 4 messages into 'WhatsApp: ChatGPT'" in first.stdout

    second = ferry(data, "import-whatsapp", str(export), "--user", "telegram:42")
    assert second.returncode == 0, second.stderr
    assert "Already imported as 'WhatsApp: ChatGPT'" in second.stdout


def test_unclear_roles_and_bad_files_are_explained(tmp_path: Path) -> None:
    unclear = tmp_path / "chat.txt"
    unclear.write_text(EXPORT.replace("ChatGPT:", "Kai:").replace("Messages and calls", "Pesan"), encoding="utf-8")
    asked = ferry(tmp_path / "data", "import-whatsapp", str(unclear), "--user", "telegram:1")
    assert asked.returncode == 2
    assert "Run again with --assistant NAME; senders: 'Dana', 'Kai'" in asked.stderr
    chosen = ferry(tmp_path / "data", "import-whatsapp", str(unclear), "--user", "telegram:1", "--assistant", "Kai")
    assert chosen.returncode == 0, chosen.stderr

    junk = tmp_path / "notes.txt"
    junk.write_text("shopping list\neggs\n", encoding="utf-8")
    refused = ferry(tmp_path / "data", "import-whatsapp", str(junk), "--user", "telegram:1")
    assert refused.returncode == 2
    assert refused.stderr.strip() == "ferry: notes.txt was not imported: it is not a WhatsApp chat export"
