"""Bad input on /ws/inform/: each gets a clear error frame (or a refused handshake),
the socket stays usable, and nothing changes."""

import json
from unittest.mock import ANY

import pytest
from channels.db import database_sync_to_async as db
from django.conf import settings

from inform.models import Notification, SiteUpdateRead
from inform.selectors import latest_notification_id
from inform.services import send_inform

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def alice_with_two(make_user):
    alice, bob = await db(make_user)("alice"), await db(make_user)("bob")
    (p,) = await db(send_inform)(to=alice, verb="follow", text="bob followed you", actor=bob)
    (s,) = await db(send_inform)(everyone=True, verb="site_update", text="hello")
    return alice, bob, p, s


def state():
    return (
        Notification.objects.count(),
        Notification.objects.filter(read_at__isnull=False).count(),
        SiteUpdateRead.objects.count(),
    )


astate = db(state)


async def still_works(s, unread: int) -> None:
    latest = await db(latest_notification_id)()
    await s.send({"type": "sync", "after": latest})
    assert await s.recv() == {"type": "unread", "unread": unread, "unseen": unread, "version": ANY}
    assert await s.recv() == {"type": "synced", "cursor": latest}


BAD_FRAMES = [
    ("not json", "bad_request"),
    ("{", "bad_request"),
    ("[]", "bad_request"),
    ('"sync"', "bad_request"),
    ("null", "bad_request"),
    ("{}", "bad_request"),
    ('{"type": "shout"}', "bad_request"),
    ('{"type": 5}', "bad_request"),
    ('{"type": "read"}', "bad_request"),
    ('{"type": "read", "ids": []}', "bad_request"),
    ('{"type": "read", "ids": "1"}', "bad_request"),
    ('{"type": "read", "ids": [-1]}', "bad_request"),
    ('{"type": "read", "ids": ["1"]}', "bad_request"),
    (json.dumps({"type": "read", "ids": list(range(1, 502))}), "bad_request"),
    ('{"type": "sync", "after": -5}', "bad_request"),
    ('{"type": "sync", "after": "10"}', "bad_request"),
    ('{"type": "sync"}', "bad_request"),
    ('{"type": "sync", "after": null}', "bad_request"),
    ("x" * (settings.WS_MAX_FRAME_CHARS + 1), "too_large"),
]


@pytest.mark.parametrize("text,code", BAD_FRAMES)
async def test_bad_frames_get_an_error_and_change_nothing(sockets, make_user, text, code):
    alice, *_ = await alice_with_two(make_user)
    a = await sockets.open(user=alice)
    other_tab = await sockets.open(user=alice)
    before = await astate()
    await a.send(text)
    error = await a.recv()
    assert error["type"] == "error" and error["code"] == code
    assert isinstance(error["detail"], str) and error["detail"]
    assert await a.silent() and await other_tab.silent(0.1)
    assert await astate() == before
    await still_works(a, unread=2)


async def test_binary_frames_get_an_error(sockets, make_user):
    alice, *_ = await alice_with_two(make_user)
    a = await sockets.open(user=alice)
    await a.comm.send_to(bytes_data=b'{"type": "read_all"}')
    error = await a.recv()
    assert error["type"] == "error" and error["code"] == "bad_request"
    await still_works(a, unread=2)


async def test_anonymous_sockets_cannot_sync_or_read(sockets, make_user):
    alice, bob, p, s = await alice_with_two(make_user)
    anon = await sockets.open()
    before = await astate()
    for frame in ({"type": "sync", "after": 0}, {"type": "read", "ids": [p.id]}, {"type": "read_all"}):
        await anon.send(frame)
        error = await anon.recv()
        assert error["type"] == "error" and error["code"] == "unauthenticated"
    assert await anon.silent()
    assert await astate() == before
    # still a live anonymous socket
    await db(send_inform)(everyone=True, verb="site_update", text="still here")
    assert (await anon.recv())["event"] == "site_update"


async def test_read_of_someone_elses_ids_changes_nothing(sockets, make_user):
    alice, bob, p, s = await alice_with_two(make_user)
    b = await sockets.open(user=bob)
    a = await sockets.open(user=alice)
    before = await astate()
    await b.send({"type": "read", "ids": [p.id]})
    error = await b.recv()
    assert error["type"] == "error" and str(p.id) in error["detail"]
    assert await a.silent() and await b.silent(0.1)
    assert await astate() == before
    await still_works(b, unread=1)  # bob's site update is still unread


async def test_rate_limit_answers_rate_limited_and_does_nothing(sockets, make_user, settings):
    settings.WS_RATE_PER_SECOND, settings.WS_RATE_BURST = 0.01, 3
    alice, bob, p, s = await alice_with_two(make_user)
    a = await sockets.open(user=alice)
    for _ in range(3):
        await still_works(a, unread=2)
    before = await astate()
    await a.send({"type": "read_all"})
    error = await a.recv()
    assert error["type"] == "error" and error["code"] == "rate_limited" and error["detail"]
    assert await a.silent()
    assert await astate() == before


async def test_a_client_that_keeps_abusing_is_closed(sockets, make_user, settings):
    from realtime.consumer import ABUSE_LIMIT, CLOSE_ABUSE

    settings.WS_RATE_PER_SECOND, settings.WS_RATE_BURST = 1000, 1000
    alice, *_ = await alice_with_two(make_user)
    a = await sockets.open(user=alice)
    for _ in range(ABUSE_LIMIT):
        await a.send("junk")
        assert (await a.recv())["code"] == "bad_request"
    await a.send("junk")
    closed = await a.comm.receive_output(timeout=3)
    assert closed == {"type": "websocket.close", "code": CLOSE_ABUSE}


async def test_one_good_frame_resets_the_abuse_count(sockets, make_user, settings):
    from realtime.consumer import ABUSE_LIMIT

    settings.WS_RATE_PER_SECOND, settings.WS_RATE_BURST = 1000, 1000
    alice, *_ = await alice_with_two(make_user)
    a = await sockets.open(user=alice)
    for _ in range(2):
        for _ in range(ABUSE_LIMIT - 1):
            await a.send("junk")
            assert (await a.recv())["code"] == "bad_request"
        await still_works(a, unread=2)
    await a.send("junk")
    assert (await a.recv())["code"] == "bad_request"


@pytest.mark.parametrize("origin", [b"http://evil.example", b"http://127.0.0.1.evil.example", b"null"])
async def test_foreign_origin_handshake_is_refused(sockets, make_user, origin):
    alice = await db(make_user)("alice")
    await sockets.open(user=alice, origin=origin, expect=False)
    await sockets.open(origin=origin, expect=False)


async def test_missing_origin_is_refused(sockets, make_user):
    alice = await db(make_user)("alice")
    await sockets.open(user=alice, origin=None, expect=False)


async def test_unknown_socket_path_is_refused(sockets):
    with pytest.raises(ValueError):
        await sockets.open("/ws/nothing/")
