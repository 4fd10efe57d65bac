"""/export and /forget: the user's own data, handed over in the documented format or deleted."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from core.assistant import Assistant
from core.budgets import Limit, with_budget
from core.settings import DEFAULT_CONFIG_DIR
from core.store.memory import MemoryStore
from core.store.tinydb_store import TinyDBStore
from core.types import ChatKey, FileReply, Reaction, ReplyEvent
from tests.conftest import MakeAssistant
from tests.core.test_accounts import SG, TG, Clock, link_code, notice
from tests.core.test_assistant import final, say
from tests.fakes.openai_server import FakeOpenAI, Reply

SCHEMA = json.loads((DEFAULT_CONFIG_DIR / "export-schema.json").read_text(encoding="utf-8"))

# --- a small JSON Schema validator for exactly the keywords the export schema uses -----------

ANNOTATIONS = {"$schema", "$id", "title", "description", "$defs"}
CHECKED = {"type", "required", "properties", "additionalProperties", "items", "const", "enum",
           "minimum", "minLength", "pattern", "$ref"}
TYPES: dict[str, Any] = {
    "object": dict, "array": list, "string": str, "null": type(None), "boolean": bool,
    "integer": int, "number": (int, float),
}


def schema_errors(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Where ``value`` breaks ``schema``: an empty list when it is valid."""
    if "$ref" in schema:
        target: Any = SCHEMA
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return schema_errors(value, target, path)
    errors: list[str] = []
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        is_bool = isinstance(value, bool)
        if not any(isinstance(value, TYPES[n]) and (n == "boolean" or not is_bool) for n in names):
            return [f"{path}: {value!r} is not {names}"]
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: {value!r} is not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if "minimum" in schema and isinstance(value, int | float) and value < schema["minimum"]:
        errors.append(f"{path}: {value} < {schema['minimum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{path}: too short")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, dict):
        errors += [f"{path}: {name} is missing" for name in schema.get("required", []) if name not in value]
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            errors += [f"{path}: unexpected {name}" for name in value if name not in props]
        for name, sub in props.items():
            if name in value:
                errors += schema_errors(value[name], sub, f"{path}.{name}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{path}[{i}]")
    return errors


def keywords(schema: Any) -> set[str]:
    if isinstance(schema, list):
        return set().union(*(keywords(s) for s in schema)) if schema else set()
    if not isinstance(schema, dict):
        return set()
    found = set(schema) - {"properties", "$defs"}
    for sub in [*schema.get("properties", {}).values(), *schema.get("$defs", {}).values()]:
        found |= keywords(sub)
    if isinstance(schema.get("items"), dict):
        found |= keywords(schema["items"])
    return found


def test_the_validator_understands_every_keyword_of_the_schema() -> None:
    assert keywords(SCHEMA) <= CHECKED | ANNOTATIONS


# --- /export ----------------------------------------------------------------------------------


def files(events: list[ReplyEvent]) -> dict[str, FileReply]:
    return {e.filename.rsplit(".", 1)[1]: e for e in events if isinstance(e, FileReply)}


async def chat_on_both(assistant: Assistant, openai_server: FakeOpenAI, clock: Clock) -> None:
    await say(assistant, "What's a good name for a cat?", TG, sender_name="Dana")
    clock.now += 60
    await say(assistant, "/new", TG)
    clock.now += 60
    # An answer that broke off is exported with its status.
    openai_server.enqueue(Reply("Once upon a time", chunk_size=5, break_after=2))
    await say(assistant, "Tell me a **long** story", SG)


async def test_export_holds_every_conversation_from_both_messengers_in_the_documented_schema(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI
) -> None:
    clock = Clock()
    assistant = await make_assistant(MemoryStore(), clock=clock)
    code = await link_code(assistant, TG)
    await say(assistant, f"/link {code}", SG)
    await say(assistant, "/instructions Answer briefly.", SG)
    await chat_on_both(assistant, openai_server, clock)
    await say(assistant, "/new", SG)  # an empty conversation is left out

    events = await say(assistant, "/export", SG)
    assert isinstance(events[0], Reaction) and events[0].emoji == "👀"  # it takes a moment
    got = files(events)
    assert set(got) == {"json", "md"}
    assert got["json"].mime_type == "application/json" and got["md"].mime_type == "text/markdown"
    doc = json.loads(got["json"].data)
    assert schema_errors(doc, SCHEMA) == []
    assert doc["format"] == "ferry-export" and doc["version"] == 1
    assert set(doc["user"]["identities"]) == {TG, SG}
    assert doc["user"]["instructions"] == "Answer briefly."
    convs = doc["conversations"]
    assert [[(m["role"], m["content"], m["status"]) for m in c["messages"]] for c in convs] == [
        [
            ("user", "What's a good name for a cat?", "ok"),
            ("assistant", "You said: What's a good name for a cat?", "ok"),
        ],
        [("user", "Tell me a **long** story", "ok"), ("assistant", "Once upon ", "interrupted")],
    ]
    assert convs[0]["messages"][0]["author"] == TG and convs[1]["messages"][0]["author"] == SG
    assert doc["usage"]["prompt_tokens"] > 0
    assert doc["usage"]["by_model"][0]["model"] == "gpt-4o-mini"

    md = got["md"].data.decode()
    assert md.startswith("# Ferry conversations of Dana")
    assert "## What's a good name for a cat?" in md
    assert "You said: What's a good name for a cat?" in md
    assert "Once upon" in md and "(cut off)" in md


async def test_the_validator_rejects_what_the_schema_forbids(
    make_assistant: MakeAssistant,
) -> None:
    assistant = await make_assistant(MemoryStore(), clock=Clock())
    await say(assistant, "hello", TG)
    doc = json.loads(files(await say(assistant, "/export", TG))["json"].data)
    assert schema_errors(doc, SCHEMA) == []
    broken = json.loads(json.dumps(doc))
    del broken["user"]["identities"]
    broken["conversations"][0]["messages"][0]["role"] = "robot"
    broken["conversations"][0]["messages"][1]["created_at"] = 1795000000
    broken["surprise"] = True
    errors = schema_errors(broken, SCHEMA)
    assert len(errors) == 4, errors


async def test_export_and_forget_stay_out_of_groups(make_assistant: MakeAssistant) -> None:
    assistant = await make_assistant(MemoryStore(), clock=Clock())
    group = ChatKey("telegram", "-100", is_group=True)
    for command in ("/export", "/forget"):
        events = await say(assistant, command, TG, chat=group)
        assert not files(events)
        assert "private chat" in notice(events).text and not notice(events).buttons
    forged = await say(assistant, "", TG, chat=group, callback="forget:yes")
    assert "Nothing was deleted" in notice(forged).text
    assert await assistant.store.find_user(TG) is not None


# --- /forget ----------------------------------------------------------------------------------


def grep(folder: Path, needles: list[str]) -> dict[str, list[str]]:
    """Which of ``needles`` occur in which files under ``folder`` (names and contents)."""
    hits: dict[str, list[str]] = {}
    for root, _dirs, names in os.walk(folder):
        for name in names:
            path = Path(root) / name
            data = path.read_bytes().decode("utf-8", "replace") + str(path.relative_to(folder))
            # JSON may escape non-ASCII text; compare with both spellings.
            found = [n for n in needles if n in data or json.dumps(n)[1:-1] in data]
            if found:
                hits[str(path.relative_to(folder))] = found
    return hits


async def test_forget_leaves_no_trace_of_the_user_in_the_store_files(
    make_assistant: MakeAssistant, openai_server: FakeOpenAI, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    clock = Clock()
    assistant = await make_assistant(TinyDBStore(data), clock=clock)
    await say(assistant, "my secret is pineapple-on-pizza", TG, sender_name="Dana Wijaya")
    code = await link_code(assistant, TG)
    await say(assistant, f"/link {code}", SG, sender_name="Dana Wijaya")
    await say(assistant, "remember Jalan Braga 17", SG)
    await say(assistant, "/instructions Call me Nona Dana.", SG)
    await say(assistant, "/link", TG)  # a live code
    await say(assistant, "/link WRONG-CODE", "signal:other-guy")  # someone else's wrong try
    await say(assistant, "/link NOPE-NOPE", SG)  # and a wrong try of the user's own
    user = await assistant.store.find_user(TG)
    assert user is not None
    await assistant.store.put_user(with_budget(user, {"day": Limit(50_000, "tokens")}))
    await say(assistant, "someone else's words stay", "telegram:5151", sender_name="Budi")

    needles = [
        user.id, TG, SG, TG.split(":")[1], SG.split(":")[1], "Dana Wijaya", "Nona Dana",
        "pineapple-on-pizza", "Jalan Braga 17",
    ]
    assert {n for found in grep(data, needles).values() for n in found} == set(needles)  # all there before

    ask = notice(await say(assistant, "/forget", SG))
    assert [b.data for row in ask.buttons for b in row] == ["forget:yes", "forget:no"]
    assert "Nothing was deleted" in notice(await say(assistant, "", SG, callback="forget:no")).text
    assert await assistant.store.find_user(TG) is not None
    done = notice(await say(assistant, "", SG, callback="forget:yes"))
    assert "everything stored about you is deleted" in done.text

    assert grep(data, needles) == {}
    assert grep(data, ["someone else's words stay", "Budi"])  # the other user is untouched
    assert await assistant.store.find_user(TG) is None and await assistant.store.find_user(SG) is None
    # Writing again starts afresh.
    assert final(await say(assistant, "hello again", TG)).text == "You said: hello again"
    user_again = await assistant.store.find_user(TG)
    assert user_again is not None and user_again.id != user.id and user_again.identities == (TG,)


@pytest.mark.parametrize("backend", ["memory", "tinydb"])
async def test_forget_deletes_every_linked_identity_and_a_lone_admin_lets_the_claim_code_back(
    make_assistant: MakeAssistant, tmp_path: Path, backend: str
) -> None:
    store = MemoryStore() if backend == "memory" else TinyDBStore(tmp_path / "data")
    assistant = await make_assistant(store, clock=Clock())
    claim = await assistant.store.get_meta("claim_code")
    await say(assistant, f"/claim {claim}", TG)
    assert await assistant.store.get_meta("has_admin") is True
    code = await link_code(assistant, TG)
    await say(assistant, f"/link {code}", SG)
    await say(assistant, "/forget", TG)
    await say(assistant, "", TG, callback="forget:yes")
    assert await assistant.store.list_users() == []
    assert await assistant.store.get_meta("has_admin") is None
    assert await assistant.access.ensure_claim_code() is not None
