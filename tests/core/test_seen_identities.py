"""Admins name people by what they see (issue 12, point 3).

Signal identifies a person by a UUID, but people see a phone number or a profile name; the
adapter passes the number as an alias (``bots/signal/incoming.py``). Admin commands, the CLI
lookup and ``/unlink`` accept the number; access requests and link notices show it.
"""

from __future__ import annotations

from pathlib import Path

from core import outbox
from core.access import AccessControl, normalise_identity
from core.store.base import UserRecord
from core.store.memory import MemoryStore
from core.store.tinydb_store import TinyDBStore
from tests.conftest import MakeAssistant
from tests.core.test_accounts import Clock, link_code, notice
from tests.core.test_admin_cli import ferry
from tests.core.test_assistant import say

ADMIN = "telegram:99"
UUID = "signal:8c2d1f0e-5b7a-4c1e-9d3f-2a6b8e4c7d10"
NUMBER = "signal:+4915112345678"


def test_numbers_are_read_as_people_type_them() -> None:
    assert normalise_identity(" signal:+49 151 1234-5678 ") == NUMBER
    assert normalise_identity("+49 (151) 12345678") == NUMBER
    assert normalise_identity("telegram:1") == "telegram:1"
    assert normalise_identity(UUID) == UUID


async def test_deny_and_block_accept_the_signal_number_people_see(make_assistant: MakeAssistant) -> None:
    assistant = await make_assistant(MemoryStore(), clock=Clock(), FERRY_ACCESS="approval", FERRY_ADMINS=ADMIN)
    await say(assistant, "/start", ADMIN)
    await say(assistant, "hello", UUID, aliases=(NUMBER,), sender_name=None)
    # The admin is on Telegram: the Signal process leaves the request in the outbox.
    (request,) = await outbox.collect(assistant.store, "telegram", assistant.clock)
    assert "+4915112345678" in request.text
    assert "8c2d1f0e" not in request.text, "a bare UUID means nothing to the admin"

    denied = notice(await say(assistant, "/deny signal:+49 151 12345678", ADMIN))
    assert "Access denied for signal:+4915112345678" in denied.text
    user = await assistant.store.find_user(UUID)
    assert user is not None and user.status == "denied"
    assert "signal:+4915112345678" in notice(await say(assistant, f"/block {NUMBER}", ADMIN)).text
    assert (await assistant.store.find_user(UUID)).status == "blocked"  # type: ignore[union-attr]

    # The CLI (``ferry admin``) looks people up the same way.
    access = AccessControl(assistant.settings, assistant.store, Clock())
    found = await access.find_user("+4915112345678")
    assert found is not None and found.id == user.id


async def test_link_notice_names_the_number_and_unlink_accepts_it(make_assistant: MakeAssistant) -> None:
    assistant = await make_assistant(MemoryStore(), clock=Clock())
    tg = "telegram:4242424201"
    await say(assistant, "hi", tg)
    code = await link_code(assistant, tg)
    await say(assistant, f"/link {code}", UUID, aliases=(NUMBER,))
    (alert,) = await outbox.collect(assistant.store, "telegram", assistant.clock)
    assert alert.to == (tg,)
    assert "signal:+4915112345678" in alert.text and "8c2d1f0e" not in alert.text
    done = notice(await say(assistant, "/unlink signal:+4915112345678", tg))
    assert "+4915112345678" in done.text and "separated" in done.text
    alone = await assistant.store.find_user(UUID)
    assert alone is not None and alone.identities == (UUID,)
    found = await AccessControl(assistant.settings, assistant.store, Clock()).find_user(NUMBER)
    assert found is not None and found.id == alone.id, "the number names the account it belongs to now"


async def test_the_cli_accepts_the_signal_number(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = TinyDBStore(data)
    await store.open()
    extra = {"aliases": {UUID: NUMBER}}  # what the bot keeps once the person wrote
    await store.put_user(UserRecord("u-sig", (UUID,), None, "pending", created_at=1.0, extra=extra))
    await store.close()
    assert await ferry(data, "users", "approve", "+49 151 12345678") == 0
    store = TinyDBStore(data)
    await store.open()
    user = await store.get_user("u-sig")
    await store.close()
    assert user is not None and user.status == "approved"
