"""``/attach PATH`` in the terminal chat (issue 15): local files through the same readers."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bots.console import Console
from core.assistant import Assistant
from tests.fakes.openai_media import speech
from tests.fakes.openai_server import FakeOpenAI
from tests.media.conftest import pdf, picture


@pytest.mark.parametrize("model", ["gpt-4o-mini"])
async def test_attach_sends_documents_voice_and_photos_through_the_core(
    assistant: Assistant, ai: FakeOpenAI, tmp_path: Path
) -> None:
    out = io.StringIO()
    console = Console(assistant, out=out, user="dana")
    (tmp_path / "my memo.pdf").write_bytes(pdf(["Lunch at one"]))
    (tmp_path / "note.ogg").write_bytes(speech("what is for lunch"))
    (tmp_path / "cat.png").write_bytes(picture(50, 40))
    await console.send(f'/attach "{tmp_path / "my memo.pdf"}" when is lunch?')
    assert "Lunch at one" in str(ai.chat_requests[-1].messages[-1]["content"])
    await console.send(f"/attach {tmp_path / 'note.ogg'}")
    assert ai.media.transcriptions[-1].filename == "audio.ogg"
    await console.send(f"/attach {tmp_path / 'cat.png'} what animal?")
    assert ai.media.images == [("JPEG", 50, 40)]
    await console.send("/attach /no/such/file.pdf")
    text = out.getvalue()
    assert "You said: when is lunch?" in text and "You said: what is for lunch" in text
    assert "You said: what animal?" in text
    assert "There is no file at /no/such/file.pdf" in text
