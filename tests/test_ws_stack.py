"""mblog.ws_stack: every WebSocket check of the site (shedding, Origin, authentication,
socket caps, routes) in one coroutine and one scope copy per socket."""

import asyncio
import json
import os

import pytest
import websockets
from channels.db import database_sync_to_async as db

from chat.models import Room
from mblog.ws_limits import CLOSE_TOO_MANY
from realtime.shed import CLOSE_RETRY_AFTER
from tests.conftest import Daphne, live_database_url, session_cookie_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.asyncio
async def test_an_open_socket_keeps_one_coroutine_of_the_stack_and_one_scope(sockets, make_user):
    """What an idle socket holds (docs/performance.md, change 18): the stack's coroutine,
    the consumer's, and the wait for the next message; one scope with all the checks' keys."""
    alice = await db(make_user)("alice")
    s = await sockets.open("/ws/inform/", user=alice)
    await s.send({"type": "sync", "after": 0})
    await s.recv_until("synced")
    chain, coro = [], s.comm.future.get_coro()
    while asyncio.iscoroutine(coro):
        chain.append(coro)
        coro = coro.cr_await
    assert [c.cr_code.co_qualname for c in chain] == ["WebSocketStack.__call__", "GuardedConsumer.__call__", "Queue.get"]
    consumer = chain[1].cr_frame.f_locals["self"]
    # Only the consumer holds the scope and receive (which it replaces under daphne).
    assert chain[0].cr_frame.f_locals["scope"] is None and chain[0].cr_frame.f_locals["receive"] is None
    assert chain[1].cr_frame.f_locals["receive"] is None and consumer._receive == s.comm.input_queue.get
    assert consumer.scope["user"] == alice and consumer.scope["url_route"] == {"args": (), "kwargs": {}}
    assert consumer.scope["path_remaining"] == "" and "session" in consumer.scope and "cookies" in consumer.scope


@pytest.mark.asyncio
async def test_chat_routes_keep_their_url_arguments(sockets, make_user):
    alice = await db(make_user)("alice")
    await db(Room.objects.get_or_create)(name="lobby")
    s = await sockets.open("/ws/chat/lobby/", user=alice)
    assert (await s.recv_until("history"))["type"] == "history"
    chain, coro = [], s.comm.future.get_coro()
    while asyncio.iscoroutine(coro):
        chain.append(coro)
        coro = coro.cr_await
    assert chain[1].cr_frame.f_locals["self"].scope["url_route"] == {"args": (), "kwargs": {"room": "lobby"}}


async def _refused_status(url: str, **kwargs) -> int:
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(url, open_timeout=10, **kwargs)
    return refused.value.response.status_code


async def _closed_with(ws) -> tuple[int, list]:
    frames = []
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
    return closed.value.rcvd.code, frames


@pytest.mark.slow
def test_over_daphne_every_check_still_applies_and_caps_are_given_back(make_user):
    """Over real handshakes: a foreign or missing Origin is refused (HTTP 403, before the
    socket opens); the session cookie signs the socket in; a user's third socket is
    refused with 4429 and the process's fifth with 4503 (retry after); an unknown path
    fails; and once sockets close, their places in every cap are free again."""
    alice, bob = make_user("alice"), make_user("bob")
    cookies = {u.username: session_cookie_for(u) for u in (alice, bob)}
    server = Daphne({**os.environ, "DATABASE_URL": live_database_url(), "WS_MAX_SOCKETS_PER_USER": "2",
                     "WS_MAX_SOCKETS_PER_PROCESS": "4", "WS_MAX_SOCKETS_PER_ADDRESS": "0"}, name="ws-stack").start()
    origin = server.url
    url = server.url.replace("http://", "ws://") + "/ws/inform/"

    async def signed_in(name: str):
        ws = await websockets.connect(url, origin=origin, additional_headers={"Cookie": cookies[name]},
                                      open_timeout=10)
        await ws.send(json.dumps({"type": "sync", "after": 0}))
        while (frame := json.loads(await asyncio.wait_for(ws.recv(), 10)))["type"] != "synced":
            assert frame["type"] != "error", frame
        return ws

    async def scenario():
        assert await _refused_status(url, origin="http://127.0.0.1:9") == 403
        assert await _refused_status(url) == 403  # no Origin
        opened = [await signed_in("alice"), await signed_in("alice")]
        third = await websockets.connect(url, origin=origin, additional_headers={"Cookie": cookies["alice"]})
        code, frames = await _closed_with(third)
        assert code == CLOSE_TOO_MANY and frames[0]["code"] == "too_many_sockets"
        opened += [await signed_in("bob"), await websockets.connect(url, origin=origin)]
        fifth = await websockets.connect(url, origin=origin)
        code, frames = await _closed_with(fifth)
        assert code == CLOSE_RETRY_AFTER and frames[0]["code"] == "overloaded" and frames[0]["retry_after"] > 0
        anonymous = opened.pop()
        await anonymous.send(json.dumps({"type": "sync", "after": 0}))
        assert json.loads(await asyncio.wait_for(anonymous.recv(), 10))["code"] == "unauthenticated"
        await anonymous.close()
        with pytest.raises((websockets.InvalidStatus, websockets.ConnectionClosed)):
            ws = await websockets.connect(url.replace("/ws/inform/", "/ws/nowhere/"), origin=origin, open_timeout=10)
            await asyncio.wait_for(ws.recv(), 10)
        for ws in opened:
            await ws.close()
        # Every place was given back: alice's two and the process's four.
        again = [await signed_in("alice"), await signed_in("alice"), await signed_in("bob"), await signed_in("bob")]
        for ws in again:
            await ws.close()

    try:
        asyncio.run(scenario())
    finally:
        server.stop()
