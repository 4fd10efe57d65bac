"""The assistant is everything the adapters' contract promises, used only through it."""

from __future__ import annotations

from typing import Any

from core.commands import KNOWN
from core.contract import Core
from core.store.base import StoreError
from core.store.memory import MemoryStore
from core.types import FinalText, ReplyEvent
from tests.conftest import MakeAssistant
from tests.core.test_assistant import incoming


class BrokenStore(MemoryStore):
    """A store whose disk went away after it opened."""

    broken = False

    async def get_meta(self, key: str) -> Any:
        if self.broken:
            raise StoreError("disk I/O error")
        return await super().get_meta(key)


async def test_an_adapter_needs_nothing_beyond_the_contract(make_assistant: MakeAssistant) -> None:
    core: Core = await make_assistant()
    assert await core.ready() is None
    async with core.submit(incoming("hello")) as reply:
        events: list[ReplyEvent] = [event async for event in reply]
    assert [e.text for e in events if isinstance(e, FinalText)] == ["You said: hello"]
    menu = core.command_menu("en")
    assert menu[0][0] == "new" and all(description for _, description in menu)
    assert core.language("id-ID") == "id"
    assert core.text("en", "chat.cancel_nothing") == "There is nothing to stop."
    assert b"ferry_messages_total" in core.metrics.render()


async def test_readiness_says_why_when_the_store_does_not_answer(make_assistant: MakeAssistant) -> None:
    store = BrokenStore()
    core: Core = await make_assistant(store)
    store.broken = True
    reason = await core.ready()
    assert reason is not None and "disk I/O error" in reason


async def test_every_command_the_menus_name_is_registered_and_no_other(make_assistant: MakeAssistant) -> None:
    assistant = await make_assistant()
    # /cancel is the one command answered before the pipeline, out of the chat's line.
    assert assistant.registry.command_names() | {"cancel"} == KNOWN
