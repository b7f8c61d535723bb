"""Issue 10 item 6: no cap on sockets. One session or one address cannot hold more than
its share of a process's sockets; everyone else still gets in."""

import json

import pytest
from channels.db import database_sync_to_async as db
from channels.testing import WebsocketCommunicator

from chat.models import Room
from tests.conftest import ORIGIN, session_cookie_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


class Opened:
    def __init__(self):
        self.comms = []

    async def open(self, cookie=None, address="10.0.0.1", path="/ws/inform/"):
        from mblog.asgi import application

        headers = [(b"host", b"127.0.0.1"), (b"origin", ORIGIN)]
        if cookie:
            headers.append((b"cookie", cookie.encode()))
        comm = WebsocketCommunicator(application, path, headers=headers)
        comm.scope["client"] = (address, 40000 + len(self.comms))
        ok, _ = await comm.connect(timeout=5)
        assert ok
        self.comms.append(comm)
        return comm

    async def close_all(self):
        for comm in self.comms:
            await comm.disconnect()


@pytest.fixture
async def opened():
    o = Opened()
    yield o
    await o.close_all()


async def refused(comm) -> dict:
    frame = json.loads(await comm.receive_from(timeout=3))
    closed = await comm.receive_output(timeout=3)
    assert closed == {"type": "websocket.close", "code": 4429}
    return frame


async def still_open(comm) -> bool:
    return await comm.receive_nothing(timeout=0.2)


async def test_one_user_cannot_open_more_than_the_cap(opened, make_user, settings):
    settings.WS_MAX_SOCKETS_PER_USER = 5
    alice, bob = await db(make_user)("alice"), await db(make_user)("bob")
    a_cookie, b_cookie = await db(session_cookie_for)(alice), await db(session_cookie_for)(bob)
    mine = [await opened.open(a_cookie, address=f"10.0.0.{i}") for i in range(5)]
    for comm in mine:
        assert await still_open(comm)
    for i in range(20):  # the attack: many more from the same session
        frame = await refused(await opened.open(a_cookie, address=f"10.0.1.{i}"))
    assert frame["type"] == "error" and frame["code"] == "too_many_sockets"
    assert all([await still_open(c) for c in mine])
    assert await still_open(await opened.open(b_cookie))  # bob is not affected
    await mine[0].disconnect()
    opened.comms.remove(mine[0])
    assert await still_open(await opened.open(a_cookie))  # a closed tab frees a place


async def test_one_address_cannot_open_more_than_the_cap(opened, make_user, settings):
    settings.WS_MAX_SOCKETS_PER_ADDRESS = 10
    for _ in range(10):
        assert await still_open(await opened.open(address="10.9.9.9"))
    for _ in range(30):
        assert (await refused(await opened.open(address="10.9.9.9")))["code"] == "too_many_sockets"
    carol = await db(make_user)("carol")
    await refused(await opened.open(await db(session_cookie_for)(carol), address="10.9.9.9"))
    assert await still_open(await opened.open(address="10.9.9.10"))
    await db(Room.objects.get_or_create)(name="lobby")
    chat = await opened.open(await db(session_cookie_for)(carol), address="10.9.9.11", path="/ws/chat/lobby/")
    assert json.loads(await chat.receive_from(timeout=3))["type"] == "history"
