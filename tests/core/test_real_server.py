"""Ferry against a real OpenAI-compatible server: llama-cpp-python with a small GGUF model.

The fakes prove the wire format; this proves a real implementation accepts what Ferry sends
(a chat template that demands alternating roles, a 2,048-token window it publishes nowhere, failed
streams that arrive as empty successes). It runs when the server and model are installed as
``shared/research/local-model.md`` describes (``~/.cache/llm-venv`` and
``~/.cache/gemma-3-270m-q4_k_m.gguf``, or FERRY_TEST_LLAMA_PYTHON / FERRY_TEST_GGUF), and is
skipped otherwise: the build takes minutes, too slow for every CI run.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest

from core.assistant import Assistant
from core.llm import OpenAIModelClient
from core.store.base import MessageRecord, Role
from core.store.memory import MemoryStore
from core.types import FinalText, Notice
from tests.conftest import make_settings
from tests.core.test_assistant import say

PYTHON = Path(os.environ.get("FERRY_TEST_LLAMA_PYTHON", Path.home() / ".cache/llm-venv/bin/python"))
GGUF = Path(os.environ.get("FERRY_TEST_GGUF", Path.home() / ".cache/gemma-3-270m-q4_k_m.gguf"))

# Gemma's template with the alternation check that vLLM and llama.cpp --jinja enforce. llama-cpp-python
# has no raise_exception(): calling the undefined name fails the same way, with the message in its log.
STRICT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}"
    "{% if not loop.first %}{{ raise_exception('System message must come first') }}{% endif %}"
    "<start_of_turn>user\n{{ message['content'] }}<end_of_turn>\n{% else %}"
    "{% set idx = loop.index0 - (1 if messages[0]['role'] == 'system' else 0) %}"
    "{% if (message['role'] == 'user') != (idx % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "<start_of_turn>{{ 'model' if message['role'] == 'assistant' else 'user' }}\n"
    "{{ message['content'] }}<end_of_turn>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)

pytestmark = pytest.mark.skipif(
    not (PYTHON.exists() and GGUF.exists()),
    reason="no local llama-cpp-python server (see shared/research/local-model.md)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("llama")
    config = folder / "tokenizer_config.json"
    config.write_text(json.dumps({"bos_token": "<bos>", "eos_token": "<eos>", "chat_template": STRICT_TEMPLATE}))
    port = _free_port()
    log = (folder / "server.log").open("w")
    proc = subprocess.Popen(
        [str(PYTHON), "-m", "llama_cpp.server", "--model", str(GGUF), "--chat_format", "hf-tokenizer-config",
         "--hf_tokenizer_config_path", str(config), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(240):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None:
                pytest.fail(f"the llama server exited: {(folder / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


@pytest.fixture
async def real_assistant(llama_server: str) -> AsyncIterator[Assistant]:
    settings = make_settings(
        OPENAI_BASE_URL=llama_server, FERRY_MODEL=str(GGUF), FERRY_MODELS=str(GGUF), FERRY_REPLY_TOKENS="16"
    )
    client = OpenAIModelClient(llama_server, "", chunk_timeout=300.0)  # production retries
    assistant = Assistant(settings, MemoryStore(), client)
    await assistant.start()
    yield assistant
    await assistant.close()


def answered(events: Sequence[object]) -> bool:
    """A real answer arrived (a base model's text is nonsense, but it is text), not an error."""
    finals = [e for e in events if isinstance(e, FinalText)]
    return bool(finals) and bool(finals[0].text.strip()) and not any(
        isinstance(e, Notice) and e.is_error for e in events
    )


HISTORY: list[tuple[Role, str]] = [
    ("assistant", "Part one."), ("assistant", "Part two."), ("user", "ok"), ("user", "and?"),
]


async def test_an_imported_chat_with_answers_in_a_row_is_answered_by_a_strict_template(
    real_assistant: Assistant,
) -> None:
    assert answered(await say(real_assistant, "hello"))
    user = await real_assistant.store.find_user("telegram:1")
    assert user is not None
    conv = (await real_assistant.store.list_conversations(f"user:{user.id}", 1))[0]
    await real_assistant.store.append_messages([
        MessageRecord(id=uuid.uuid4().hex, conversation_id=conv.id, role=role, content=text, created_at=1.0)
        for role, text in HISTORY
    ])
    assert answered(await say(real_assistant, "go on"))


async def test_a_window_published_nowhere_is_learned_and_every_message_is_answered(
    real_assistant: Assistant,
) -> None:
    long = "the quick brown fox jumps over the lazy dog " * 70  # about 700 tokens
    for n in range(4):  # 2,800 tokens of history: over the server's 2,048
        events = await asyncio.wait_for(say(real_assistant, f"{n}: {long}"), 600)
        assert answered(events), events
