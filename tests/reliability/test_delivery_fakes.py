"""The fakes deliver updates the way upstream does, so reliability tests measure real losses."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from telegram import Bot, Update

from tests.fakes.signal_server import ALICE_NUMBER, ALICE_UUID, FakeSignalServer
from tests.fakes.telegram_server import FakeTelegram


async def call(tg: FakeTelegram, method: str, **params: object) -> Any:
    """One Bot API call as a bot makes it; the decoded envelope."""
    async with aiohttp.ClientSession() as http, http.post(f"{tg.base_url}{tg.token}/{method}", json=params) as r:
        return await r.json()


async def test_telegram_updates_stay_queued_until_an_offset_passes_them() -> None:
    async with FakeTelegram() as tg:
        first = tg.push_text(1, "one")
        tg.push_text(2, "two")
        got = await call(tg, "getUpdates", timeout=0)
        again = await call(tg, "getUpdates", timeout=0)  # no offset: nothing is confirmed
        assert got["result"] == again["result"] and len(got["result"]) == 2
        ids = [u["update_id"] for u in got["result"]]
        rest = await call(tg, "getUpdates", offset=ids[0] + 1, timeout=0)
        assert [u["message"]["text"] for u in rest["result"]] == ["two"]
        assert [u["update_id"] for u in tg.pending_updates] == [ids[1]]
        assert first["text"] == "one"


async def test_telegram_long_poll_waits_for_an_update() -> None:
    async with FakeTelegram() as tg:
        poll = asyncio.create_task(call(tg, "getUpdates", timeout=5))
        await asyncio.sleep(0.2)
        assert not poll.done()
        tg.push_text(1, "late")
        got = await asyncio.wait_for(poll, 5)
        assert [u["message"]["text"] for u in got["result"]] == ["late"]


async def test_telegram_webhook_is_retried_until_answered_2xx_and_blocks_get_updates() -> None:
    statuses = iter([500, 502, 200])
    received: list[int] = []

    async def hook(request: web.Request) -> web.Response:
        update = await request.json()
        status = next(statuses)
        if status == 200:
            received.append(update["update_id"])
        return web.Response(status=status)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with FakeTelegram() as tg:
            tg.webhook_retry_delay = 0.01
            await call(tg, "setWebhook", url=f"http://127.0.0.1:{port}/hook")
            refused = await call(tg, "getUpdates", timeout=0)
            assert refused["error_code"] == 409
            tg.push_text(5, "hi")
            update_id = tg.pending_updates[0]["update_id"]
            await tg.wait_until(lambda: not tg.pending_updates)
            assert tg.webhook_deliveries[-3:] == [500, 502, 200]
            assert received == [update_id]
    finally:
        await runner.cleanup()


async def test_a_pending_update_goes_to_a_webhook_set_later() -> None:
    async with FakeTelegram() as tg:
        tg.push_text(1, "while nobody listened")
        got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        async def hook(request: web.Request) -> web.Response:
            got.set_result(await request.json())
            return web.Response()

        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            await call(tg, "setWebhook", url=f"http://127.0.0.1:{runner.addresses[0][1]}/hook")
            update = await asyncio.wait_for(got, 5)
            assert update["message"]["text"] == "while nobody listened"
        finally:
            await runner.cleanup()


async def test_python_telegram_bot_cannot_read_the_poison_poll_but_reads_an_edit() -> None:
    async with FakeTelegram() as tg:
        poison = tg.push_poison_poll(7)
        original = tg.push_text(8, "first wording")
        tg.push_edited_text(original, "second wording")
        raw = (await call(tg, "getUpdates", timeout=0))["result"]
        assert isinstance(raw, list)
        by_id = {u["update_id"]: u for u in raw}
        with pytest.raises(TypeError, match="required argument since Bot API"):
            Update.de_json(json.loads(json.dumps(by_id[poison])), Bot(tg.token))
        edited = Update.de_json(raw[-1], Bot(tg.token))
        assert edited.edited_message is not None and edited.edited_message.text == "second wording"
        assert edited.edited_message.message_id == original["message_id"]


async def test_signal_drops_frames_while_no_websocket_is_attached() -> None:
    async with FakeSignalServer() as fake, aiohttp.ClientSession() as http:
        await fake.push_message(ALICE_UUID, ALICE_NUMBER, "into the void")
        assert len(fake.dropped) == 1
        async with http.ws_connect(f"http://{fake.service}/v1/receive/{fake.number}") as ws:
            await fake.wait_connected()
            await fake.push_message(ALICE_UUID, ALICE_NUMBER, "heard")
            frame = json.loads((await ws.receive(timeout=5)).data)
            assert frame["envelope"]["dataMessage"]["message"] == "heard"
            await fake.drop_websockets()
        await fake.push_message(ALICE_UUID, ALICE_NUMBER, "lost again")
        assert len(fake.dropped) == 2
        await fake.restart(down_for=0.1)
        async with http.ws_connect(f"http://{fake.service}/v1/receive/{fake.number}"):
            await fake.wait_connected(2)
        events = [e for e, _ in fake.attach_log]
        assert events == ["attach", "detach", "down", "up", "attach", "detach"]


async def test_signal_person_sees_the_last_edit_of_each_message() -> None:
    async with FakeSignalServer() as fake, aiohttp.ClientSession() as http:
        url = f"http://{fake.service}/v2/send"
        body = {"number": fake.number, "recipients": [ALICE_UUID]}
        async with http.post(url, json={**body, "message": "Answer…"}) as r:
            ts = int((await r.json())[0]["timestamp"])
        async with http.post(url, json={**body, "message": "Answer, complete", "edit_timestamp": ts}):
            pass
        async with http.post(url, json={**body, "message": "ghost edit", "edit_timestamp": 1}):
            pass
        async with http.post(url, json={**body, "message": "second"}):
            pass
        assert fake.seen(ALICE_UUID) == ["Answer, complete", "second"]


async def test_telegram_webhook_sends_one_chats_updates_in_turn_and_at_most_max_connections_at_once() -> None:
    # As the Bot API server: a chat's next update waits for the answer to the one before it, other
    # chats' go side by side up to setWebhook's max_connections, and a POST not answered in time
    # counts as failed and is sent again (its first handling may still be running meanwhile).
    in_flight: dict[int, int] = {}
    overlaps: list[int] = []
    seen: list[tuple[int, int]] = []
    slow_once: set[int] = set()

    async def hook(request: web.Request) -> web.Response:
        update = json.loads(await request.read())
        chat = update["message"]["chat"]["id"]
        in_flight[chat] = in_flight.get(chat, 0) + 1
        if in_flight[chat] > 1 and chat != 1:
            overlaps.append(chat)
        try:
            if chat == 1 and update["update_id"] not in slow_once:
                slow_once.add(update["update_id"])
                await asyncio.sleep(0.6)  # longer than the fake's timeout: it must come again
            else:
                await asyncio.sleep(0.05)
            seen.append((chat, update["update_id"]))
            return web.Response(status=200)
        finally:
            in_flight[chat] -= 1

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        async with FakeTelegram() as tg:
            tg.webhook_retry_delay = 0.01
            tg.webhook_timeout = 0.3
            await call(tg, "setWebhook", url=f"http://127.0.0.1:{port}/hook", max_connections=3)
            ids: dict[int, list[int]] = {}
            for _ in range(3):
                for chat in range(1, 7):
                    tg.push_text(chat, "hi")
                    ids.setdefault(chat, []).append(tg.pending_updates[-1]["update_id"])
            await tg.wait_until(lambda: not tg.pending_updates, within=30)
            most = tg.webhook_most_in_flight
    finally:
        await runner.cleanup()
    assert 1 < most <= 3, "side by side, within max_connections"
    assert overlaps == [], "one chat's updates one at a time"
    for chat, wanted in ids.items():
        assert list(dict.fromkeys(uid for c, uid in seen if c == chat)) == wanted, "each chat's in order"
    assert len([c for c, _ in seen if c == 1]) == 6, "each of chat 1's timed out once and was sent again"
