"""/ws/chat/<room>/ over the real Redis layer: talk, order, presence, catch-up, abuse."""

import asyncio
import json
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from chat.models import Message, Presence, Room
from chat.services import chat_message_post, room_get_or_create
from inform.models import Notification
from realtime.hub import get_hub

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest.fixture(autouse=True)
def lobby(transactional_db):
    """The room a migration makes on a real site (a transactional test starts without it)."""
    return Room.objects.get_or_create(name="lobby")[0]

db = database_sync_to_async
LOBBY = "/ws/chat/lobby/"


async def users(make_user, *names):
    return [await db(make_user)(n) for n in names]


async def join(sockets, user, path=LOBBY):
    """Open a room socket and read its join frames: (socket, history, presence)."""
    s = await sockets.open(path, user=user)
    history = await s.recv()
    assert history["type"] == "history"
    presence = await s.recv_until("presence")
    return s, history, presence


async def presence_with(s, names, timeout=3):
    """Read presence frames until one lists exactly `names`."""
    while True:
        frame = await s.recv_until("presence", timeout)
        if frame["users"] == sorted(names):
            return frame


async def drain(s, quiet=0.5):
    """Every frame until the socket stays quiet (a receive timeout would kill the app)."""
    frames = []
    while not await s.silent(quiet):
        frames.append(await s.recv())
    return frames


async def test_anonymous_socket_is_closed_with_4401(sockets):
    s = await sockets.open(LOBBY)
    assert (await s.recv())["code"] == "unauthenticated"
    assert await s.comm.receive_output(timeout=2) == {"type": "websocket.close", "code": 4401}
    assert not await db(Presence.objects.exists)()


async def test_bad_room_name_is_closed_with_4404(sockets, make_user):
    (alice,) = await users(make_user, "alice")
    s = await sockets.open("/ws/chat/No%20Such!/", user=alice)
    assert (await s.recv())["code"] == "not_found"
    assert await s.comm.receive_output(timeout=2) == {"type": "websocket.close", "code": 4404}
    assert not await db(Room.objects.filter(name__icontains="such").exists)()


async def test_two_users_talk_and_the_broadcast_carries_the_stored_id(sockets, make_user):
    alice, bob = await users(make_user, "alice", "bob")
    a, history, _ = await join(sockets, alice)
    assert history == {"type": "history", "messages": [], "cursor": 0}
    b, _, _ = await join(sockets, bob)

    await a.send({"type": "message", "text": "  hello <b>bob</b>  "})
    got_a, got_b = await a.recv_until("message"), await b.recv_until("message")
    assert got_a == got_b
    stored = await db(Message.objects.select_related("user").get)()
    assert got_b == {
        "type": "message", "id": stored.id, "user": "alice", "text": "hello <b>bob</b>",
        "created": stored.created.isoformat(),
    }

    await b.send({"type": "message", "text": "hi alice"})
    assert (await a.recv_until("message"))["text"] == "hi alice"
    assert (await b.recv_until("message"))["user"] == "bob"


async def test_everyone_sees_the_same_order(sockets, make_user):
    alice, bob, carol = await users(make_user, "alice", "bob", "carol")
    a, _, _ = await join(sockets, alice)
    b, _, _ = await join(sockets, bob)
    c, _, _ = await join(sockets, carol)

    # Two people typing at once, interleaved and unsynchronised.
    async def talk(s, who):
        for i in range(8):
            await s.send({"type": "message", "text": f"{who} {i}"})

    await asyncio.gather(talk(a, "alice"), talk(b, "bob"))

    async def sixteen(s):
        return [await s.recv_until("message") for _ in range(16)]

    seen = [await sixteen(s) for s in (a, b, c)]
    assert seen[0] == seen[1] == seen[2]
    ids = [f["id"] for f in seen[0]]
    assert sorted(ids) == sorted(await db(lambda: list(Message.objects.values_list("id", flat=True)))())
    # Each person's own messages arrive in the order they were sent, with growing ids.
    for who in ("alice", "bob"):
        mine = [f for f in seen[0] if f["user"] == who]
        assert [f["text"] for f in mine] == [f"{who} {i}" for i in range(8)]
        assert [f["id"] for f in mine] == sorted(f["id"] for f in mine)


async def test_join_gets_the_last_50_messages_oldest_first(sockets, make_user):
    alice, bob = await users(make_user, "alice", "bob")

    def fill():
        room = room_get_or_create(name="lobby")
        for i in range(60):
            chat_message_post(room=room, author=bob, text=f"m{i}")

    await db(fill)()
    _, history, presence = await join(sockets, alice)
    assert [m["text"] for m in history["messages"]] == [f"m{i}" for i in range(10, 60)]
    assert presence == {"type": "presence", "users": ["alice"]}


async def test_presence_join_leave_and_two_tabs(sockets, make_user):
    alice, bob = await users(make_user, "alice", "bob")
    a, _, presence = await join(sockets, alice)
    assert presence["users"] == ["alice"]

    b1, _, presence = await join(sockets, bob)
    assert presence["users"] == ["alice", "bob"]
    await presence_with(a, ["alice", "bob"])

    # A second tab of bob: listed once; closing one tab keeps him here.
    b2, _, presence = await join(sockets, bob)
    assert presence["users"] == ["alice", "bob"]
    await b1.close()
    assert await db(Presence.objects.filter(user=bob).count)() == 1
    for frame in await drain(a):
        assert "bob" in frame["users"]

    # Closing the last tab: bob leaves, for alice at once.
    await b2.close()
    await presence_with(a, ["alice"])
    assert await db(Presence.objects.filter(user=bob).count)() == 0


async def test_presence_spans_processes_and_heals_after_a_killed_one(sockets, make_user, settings):
    """Rows written by other daphne processes count; rows of a dead one are swept."""
    settings.CHAT_PRESENCE_HEARTBEAT = 0.2
    alice, carol, dave = await users(make_user, "alice", "carol", "dave")

    def other_processes():
        room = room_get_or_create(name="lobby")
        now = timezone.now()
        Presence.objects.create(room=room, user=carol, conn="other-process-live", seen=now)
        Presence.objects.create(room=room, user=dave, conn="killed-process", seen=now - timedelta(minutes=5))

    await db(other_processes)()
    a, _, presence = await join(sockets, alice)
    assert presence["users"] == ["alice", "carol"]  # dave's socket died with its process
    assert not await db(Presence.objects.filter(conn="killed-process").exists)()

    # carol's process is killed too: her heartbeat stops; alice's heartbeat sweeps her out.
    await db(Presence.objects.filter(conn="other-process-live").update)(seen=timezone.now() - timedelta(minutes=5))
    await presence_with(a, ["alice"])
    assert await db(Presence.objects.count)() == 1


async def test_heartbeat_keeps_the_socket_present(sockets, make_user, settings):
    """The row outlives the stale window because the heartbeat refreshes it, and the
    refreshes announce nothing (however late a beat comes, it refreshes before it sweeps)."""
    settings.CHAT_PRESENCE_HEARTBEAT = 0.1
    settings.CHAT_PRESENCE_STALE = 0.5
    (alice,) = await users(make_user, "alice")
    a, _, _ = await join(sockets, alice)
    await drain(a)
    joined = (await db(Presence.objects.get)(user=alice)).seen
    deadline = asyncio.get_running_loop().time() + 20
    stale = timedelta(seconds=settings.CHAT_PRESENCE_STALE)
    while (seen := (await db(Presence.objects.get)(user=alice)).seen) <= joined + stale:
        assert asyncio.get_running_loop().time() < deadline, f"the heartbeat did not refresh the row ({seen})"
        await asyncio.sleep(0.05)
    assert await db(Presence.objects.filter(user=alice).count)() == 1
    assert await a.silent()  # no presence change announced


async def test_reconnect_gets_exactly_the_missed_messages(sockets, make_user):
    alice, bob = await users(make_user, "alice", "bob")
    a, _, _ = await join(sockets, alice)
    b, _, _ = await join(sockets, bob)
    for text in ("one", "two"):
        await b.send({"type": "message", "text": text})
    last = (await a.recv_until("message"))["id"]
    last = max(last, (await a.recv_until("message"))["id"])
    await a.close()  # network blip

    for text in ("three", "four", "five"):
        await b.send({"type": "message", "text": text})
    while (await b.recv_until("message"))["text"] != "five":
        pass

    a2 = await sockets.open(f"{LOBBY}?after={last}", user=alice)
    history = await a2.recv()
    assert history["type"] == "history"
    assert [m["text"] for m in history["messages"]] == ["three", "four", "five"]
    assert all(m["id"] > last for m in history["messages"])
    await a2.recv_until("presence")
    await b.send({"type": "message", "text": "six"})
    assert (await a2.recv_until("message"))["text"] == "six"


async def test_reconnect_far_behind_gets_a_reset_history(sockets, make_user, monkeypatch):
    import chat.consumers

    monkeypatch.setattr(chat.consumers, "CATCH_UP_MAX", 5)
    alice, bob = await users(make_user, "alice", "bob")

    def fill():
        room = room_get_or_create(name="lobby")
        for i in range(12):
            chat_message_post(room=room, author=bob, text=f"m{i}")

    await db(fill)()
    s = await sockets.open(f"{LOBBY}?after=0", user=alice)
    history = await s.recv()
    assert history["reset"] is True and len(history["messages"]) == 12


async def test_open_socket_catches_up_after_the_layer_lost_pushes(sockets, make_user):
    """What the hub does when Redis comes back: each socket sends what it missed."""
    alice, bob = await users(make_user, "alice", "bob")
    a, _, _ = await join(sockets, alice)
    await a.send({"type": "message", "text": "before"})
    await a.recv_until("message")

    def lost_pushes():  # stored while the layer was down: never broadcast
        room = Room.objects.get(name="lobby")
        return [Message.objects.create(room=room, user=bob, text=t).id for t in ("lost 1", "lost 2")]

    lost = await db(lost_pushes)()
    (socket,) = get_hub().sockets("chat." + str(await db(lambda: Room.objects.get(name="lobby").id)()))
    await socket.catch_up()
    got = [await a.recv_until("message"), await a.recv_until("message")]
    assert [f["id"] for f in got] == lost
    assert await a.recv() == {"type": "synced", "cursor": lost[-1]}
    assert (await a.recv())["type"] == "presence"
    await socket.catch_up()  # nothing twice
    assert await a.recv() == {"type": "synced", "cursor": lost[-1]}
    assert (await a.recv())["type"] == "presence"


async def test_flooding_is_rate_limited_and_others_are_unaffected(sockets, make_user, settings):
    # A bucket that refills too slowly to matter: exactly the burst passes, however fast
    # the server works through the flood.
    settings.WS_RATE_PER_SECOND, settings.WS_RATE_BURST = 0.001, 20
    alice, bob = await users(make_user, "alice", "bob")
    a, _, _ = await join(sockets, alice)
    b, _, _ = await join(sockets, bob)
    for i in range(60):
        await a.send({"type": "message", "text": f"flood {i}"})
    frames = []
    while len(frames) < 60:  # each frame is answered: a broadcast of it or an error
        frame = await a.recv(timeout=10)
        if frame["type"] != "presence":
            frames.append(frame)
    limited = [f for f in frames if f["type"] == "error" and f["code"] == "rate_limited"]
    delivered = [f for f in frames if f["type"] == "message"]
    assert [f["text"] for f in delivered] == [f"flood {i}" for i in range(20)]
    assert len(limited) == 40
    assert await db(Message.objects.filter(user=alice).count)() == 20

    # Bob talks as usual; alice's socket is still open.
    await b.send({"type": "message", "text": "I'm fine"})
    assert (await a.recv_until("message"))["text"] == "I'm fine"
    while (frame := await b.recv_until("message"))["user"] != "bob":
        pass
    assert frame["text"] == "I'm fine"


@pytest.mark.parametrize(
    "raw, code",
    [
        ("not json", "bad_request"),
        (json.dumps({"type": "shout", "text": "x"}), "bad_request"),
        (json.dumps({"type": "message"}), "bad_request"),
        (json.dumps({"type": "message", "text": 5}), "bad_request"),
        (json.dumps({"type": "message", "text": "   "}), "bad_request"),
        (json.dumps({"type": "message", "text": "x" * 2001}), "bad_request"),
        (json.dumps({"type": "message", "text": "nul \x00 byte"}), "bad_request"),
        (json.dumps({"type": "message", "text": "x" * 9000}), "too_large"),
    ],
)
async def test_bad_frames_get_errors_and_the_socket_stays_usable(sockets, make_user, raw, code):
    (alice,) = await users(make_user, "alice")
    a, _, _ = await join(sockets, alice)
    await a.send(raw)
    frame = await a.recv_until("error")
    assert frame["code"] == code and frame["detail"]
    assert not await db(Message.objects.exists)()
    await a.send({"type": "message", "text": "x" * 2000})
    assert len((await a.recv_until("message"))["text"]) == 2000


async def test_binary_frames_get_an_error(sockets, make_user):
    (alice,) = await users(make_user, "alice")
    a, _, _ = await join(sockets, alice)
    await a.comm.send_to(bytes_data=b"\x00\x01")
    assert (await a.recv_until("error"))["code"] == "bad_request"


async def test_mention_informs_the_mentioned_user(sockets, make_user):
    alice, bob, _ = await users(make_user, "alice", "bob", "carol")
    inform = await sockets.open("/ws/inform/", user=bob)
    a, _, _ = await join(sockets, alice)
    await a.send({"type": "message", "text": "@bob and @nobody, look; @alice talks to herself"})
    await a.recv_until("message")
    frame = await inform.recv_until("inform")
    assert frame["verb"] == "mention" and frame["actor"] == "alice" and frame["url"] == "/chat/lobby/"
    assert "look" in frame["text"]
    assert await db(Notification.objects.count)() == 1


async def test_admin_delete_pushes_the_removal(sockets, make_user, django_user_model):
    from django.test import Client

    alice, bob = await users(make_user, "alice", "bob")
    a, _, _ = await join(sockets, alice)
    b, _, _ = await join(sockets, bob)
    await b.send({"type": "message", "text": "spam"})
    await b.send({"type": "message", "text": "more spam"})
    first = (await a.recv_until("message"))["id"]
    second = (await a.recv_until("message"))["id"]

    def admin_deletes():
        admin = django_user_model.objects.create_superuser("admin", "admin@example.com", "pw-admin-123")
        client = Client()
        client.force_login(admin)
        assert client.get("/admin/chat/message/").status_code == 200
        assert client.get("/admin/chat/room/").status_code == 200
        r = client.post(f"/admin/chat/message/{first}/delete/", {"post": "yes"})
        assert r.status_code == 302
        r = client.post("/admin/chat/message/", {"action": "delete_selected", "_selected_action": [second], "post": "yes"})
        assert r.status_code == 302

    await db(admin_deletes)()
    for s in (a, b):
        assert await s.recv_until("message_removed") == {"type": "message_removed", "id": first}
        assert await s.recv_until("message_removed") == {"type": "message_removed", "id": second}
    assert not await db(Message.objects.exists)()
