"""Access tokens on /ws/inform/ and chat: the `Authorization: Bearer` handshake (no Origin
needed, cookies ignored), read-only scope, and revocation closing exactly that token's
sockets, through the whole ASGI app and, at the end, a real daphne."""

import asyncio
import json

import pytest
import websockets
from channels.db import database_sync_to_async as db
from channels.testing import WebsocketCommunicator
from django.test import Client

from chat.models import Room
from inform import selectors
from inform.services import send_inform
from realtime.consumer import CLOSE_SESSION_ENDED
from tests.conftest import ORIGIN, Socket, session_cookie_for
from tokens.services import token_create, token_revoke

pytestmark = pytest.mark.django_db(transaction=True)


class TokenSocket(Socket):
    """A Socket whose handshake carries `Authorization: Bearer <raw>` (no Origin unless given)."""

    def __init__(self, raw: str, path: str = "/ws/inform/", origin: bytes | None = None, cookie: str | None = None):
        from mblog.asgi import application

        super().__init__(path, cookie, origin)
        headers = [*self.comm.scope["headers"], (b"authorization", f"Bearer {raw}".encode())]
        self.comm = WebsocketCommunicator(application, path, headers=headers)


async def open_token_socket(raw: str, **kwargs) -> TokenSocket:
    s = TokenSocket(raw, **kwargs)
    assert await s.connect(), f"refused with {s.close_code}"
    return s


async def assert_ended(s: Socket) -> None:
    assert (await s.recv_until("error", timeout=5))["code"] == "unauthenticated"
    assert await s.comm.receive_output(timeout=5) == {"type": "websocket.close", "code": CLOSE_SESSION_ENDED}
    s.connected = False


async def test_a_token_socket_needs_no_origin_and_syncs_its_users_stream(make_user):
    alice, bob = await db(make_user)("alice"), await db(make_user)("bob")
    mine = (await db(send_inform)(to=alice, verb="follow", actor=bob, text="hi"))[0]
    await db(send_inform)(to=bob, verb="follow", actor=alice, text="not alice's")
    _, raw = await db(token_create)(user=alice, name="r", scope="read")
    s = await open_token_socket(raw)
    await s.send({"type": "sync", "after": 0})
    assert (await s.recv())["id"] == mine.id
    assert (await s.recv())["unread"] == 1
    assert (await s.recv())["type"] == "synced"
    live = (await db(send_inform)(to=alice, verb="mention", actor=bob, text="live"))[0]
    assert (await s.recv_until("inform", timeout=5))["id"] == live.id
    await s.close()


async def test_the_token_decides_not_the_cookie(make_user):
    alice, bob = await db(make_user)("alice"), await db(make_user)("bob")
    await db(send_inform)(to=alice, verb="follow", actor=bob, text="alice's")
    _, raw = await db(token_create)(user=bob, name="b", scope="read")
    s = await open_token_socket(raw, cookie=await db(session_cookie_for)(alice), origin=ORIGIN)
    await s.send({"type": "sync", "after": 0})
    assert (await s.recv_until("unread"))["unread"] == 0  # bob's stream, not alice's
    await s.recv_until("synced")
    await s.close()


@pytest.mark.parametrize("presented", ["mbt_0123456789ab_" + "x" * 43, "revoked", "", "inactive"])
async def test_bad_tokens_are_refused_at_the_handshake(make_user, presented):
    alice = await db(make_user)("alice")
    token, raw = await db(token_create)(user=alice, name="t", scope="write")
    if presented == "revoked":
        await db(token_revoke)(user=alice, token_id=token.pk)
    if presented == "inactive":
        alice.is_active = False
        await db(alice.save)()
    s = TokenSocket(raw if presented in ("revoked", "inactive") else presented, origin=ORIGIN)
    assert not await s.connect()


async def test_read_only_socket_may_sync_but_not_read(make_user):
    alice, bob = await db(make_user)("alice"), await db(make_user)("bob")
    n = (await db(send_inform)(to=alice, verb="follow", actor=bob, text="hi"))[0]
    _, raw = await db(token_create)(user=alice, name="r", scope="read")
    s = await open_token_socket(raw)
    for frame in ({"type": "read", "ids": [n.id]}, {"type": "read_all"}):
        await s.send(frame)
        got = await s.recv()
        assert got["type"] == "error" and got["code"] == "forbidden"
    await s.send({"type": "sync", "after": 0})
    assert (await s.recv_until("unread"))["unread"] == 1
    assert await db(selectors.unread_count)(alice) == 1
    await s.close()


async def test_read_write_socket_reads(make_user):
    alice, bob = await db(make_user)("alice"), await db(make_user)("bob")
    n = (await db(send_inform)(to=alice, verb="follow", actor=bob, text="hi"))[0]
    _, raw = await db(token_create)(user=alice, name="w", scope="write")
    s = await open_token_socket(raw)
    await s.send({"type": "read", "ids": [n.id]})
    assert (await s.recv_until("unread", timeout=5))["unread"] == 0
    await s.close()


async def test_read_only_token_may_listen_to_chat_but_not_post(make_user):
    alice = await db(make_user)("alice")
    await db(Room.objects.get_or_create)(name="lobby")  # a migration makes it; a flush removes it
    _, raw = await db(token_create)(user=alice, name="r", scope="read")
    s = await open_token_socket(raw, path="/ws/chat/lobby/")
    await s.recv_until("presence")
    await s.send({"type": "message", "text": "hello"})
    assert (await s.recv_until("error"))["code"] == "forbidden"
    await s.close()


async def test_revoking_closes_that_tokens_sockets_only(make_user):
    alice = await db(make_user)("alice")
    gone, gone_raw = await db(token_create)(user=alice, name="gone", scope="read")
    _, kept_raw = await db(token_create)(user=alice, name="kept", scope="read")
    doomed = [await open_token_socket(gone_raw) for _ in range(2)]
    kept = await open_token_socket(kept_raw)
    browser = Socket("/ws/inform/", await db(session_cookie_for)(alice), ORIGIN)
    assert await browser.connect()

    def revoke_on_the_page():
        c = Client()
        c.force_login(alice)
        return c.post(f"/settings/tokens/{gone.pk}/revoke/")

    assert (await db(revoke_on_the_page)()).status_code == 302
    for s in doomed:
        await assert_ended(s)
    assert await kept.silent(0.5) and await browser.silent(0.1)
    await kept.send({"type": "sync", "after": 0})
    assert (await kept.recv_until("synced"))["type"] == "synced"
    assert not await TokenSocket(gone_raw).connect()
    await kept.close()
    await browser.close()


@pytest.mark.slow
async def test_real_daphne_token_socket_and_revocation(live_url, make_user):
    """Over a real handshake: the header authenticates, a read-only token is refused a
    read, and revoking closes the socket with 4001; a bad token gets HTTP 403."""
    alice, bob = await db(make_user)("alice"), await db(make_user)("bob")
    token, raw = await db(token_create)(user=alice, name="bot", scope="read")
    url = live_url.replace("http://", "ws://") + "/ws/inform/"
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {raw}"}) as ws:
        await ws.send(json.dumps({"type": "sync", "after": 0}))
        while json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] != "synced":
            pass
        n = (await db(send_inform)(to=alice, verb="follow", actor=bob, text="live"))[0]
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["id"] == n.id
        await ws.send(json.dumps({"type": "read_all"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["code"] == "forbidden"
        await db(token_revoke)(user=alice, token_id=token.pk)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd.code == CLOSE_SESSION_ENDED
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(url, additional_headers={"Authorization": f"Bearer {raw}"})
    assert refused.value.response.status_code == 403
