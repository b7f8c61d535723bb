"""Sockets never outlive their session (realtime.sessions): sign-out closes the sockets of
that session, a password change or deactivation closes all of the user's, in every
server process; the other sessions' sockets stay open."""

import json
import time

import pytest
import websocket
from channels.db import database_sync_to_async as db
from django.conf import settings
from django.test import Client

from chat.models import Room
from realtime.consumer import CLOSE_SESSION_ENDED
from tests.conftest import ORIGIN, Socket

pytestmark = pytest.mark.django_db(transaction=True)


def signed_in_client(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def cookie_of(client: Client) -> str:
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


async def open_with(client: Client, path="/ws/inform/") -> Socket:
    s = Socket(path, cookie_of(client), ORIGIN)
    assert await s.connect()
    return s


async def assert_session_ended(s: Socket) -> None:
    frame = await s.recv_until("error", timeout=5)
    assert frame["code"] == "unauthenticated"
    assert await s.comm.receive_output(timeout=5) == {"type": "websocket.close", "code": CLOSE_SESSION_ENDED}
    s.connected = False


async def test_sign_out_closes_that_sessions_sockets_only(make_user):
    alice = await db(make_user)("alice")
    await db(Room.objects.get_or_create)(name="lobby")
    laptop, phone = await db(signed_in_client)(alice), await db(signed_in_client)(alice)
    inform, chat = await open_with(laptop), await open_with(laptop, "/ws/chat/lobby/")
    await chat.recv_until("presence")
    other = await open_with(phone)
    await db(laptop.post)("/accounts/logout/")
    await assert_session_ended(inform)
    await assert_session_ended(chat)
    assert await other.silent(0.5)
    await other.send({"type": "sync", "after": 0})
    assert (await other.recv_until("synced"))["type"] == "synced"
    await other.close()


@pytest.mark.parametrize("change", ["password", "deactivate"])
async def test_password_change_or_deactivation_closes_every_socket_of_the_user(make_user, change):
    alice, bob = await db(make_user)("alice"), await db(make_user)("bob")
    sockets = [await open_with(await db(signed_in_client)(alice)) for _ in range(2)]
    bobs = await open_with(await db(signed_in_client)(bob))

    def apply():
        if change == "password":
            alice.set_password("a-new-password-456")
        else:
            alice.is_active = False
        alice.save()

    await db(apply)()
    for s in sockets:
        await assert_session_ended(s)
    assert await bobs.silent(0.5)
    await bobs.close()


@pytest.mark.slow
def test_sign_out_in_one_process_closes_the_socket_in_another(live_url, make_user):
    """The socket lives in a daphne process; the sign-out happens here, in the test process."""
    alice = make_user("alice")
    laptop = signed_in_client(alice)
    ws = websocket.create_connection(
        live_url.replace("http://", "ws://") + "/ws/inform/", origin=live_url, cookie=cookie_of(laptop), timeout=10
    )
    try:
        ws.send(json.dumps({"type": "sync", "after": 0}))
        while json.loads(ws.recv())["type"] != "synced":
            pass
        started = time.monotonic()
        laptop.post("/accounts/logout/")
        assert json.loads(ws.recv())["code"] == "unauthenticated"
        opcode, data = ws.recv_data()
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(data[:2], "big") == CLOSE_SESSION_ENDED
        print(f"socket closed {time.monotonic() - started:.2f} s after sign-out in another process")
    finally:
        ws.close()
