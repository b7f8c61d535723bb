"""Every server frame on /ws/inform/ has exactly the CONTRACT's fields, with the right
types, as it arrives on a real socket (and as inform.frames builds it)."""

from datetime import datetime

import pytest
from channels.db import database_sync_to_async as db

from inform import frames
from inform.selectors import Counters
from inform.services import send_inform
from mblog import services as blog
from realtime.frames import BadFrame, dumps, error_frame

# CONTRACT.md, "WebSocket" section.
INFORM = {"type", "id", "verb", "actor", "text", "url", "created"}  # + optional COUNTERS
COUNTERS = {"unread", "unseen", "version"}
UNREAD = {"type"} | COUNTERS
FEED = {"type", "key", "event", "actor", "text", "url", "created"}  # key: added for backfill
ERROR = {"type", "code", "detail"}
SYNCED = {"type", "cursor"}  # ends every sync: the resume point
VERBS = {"follow", "reply", "mention", "site_update"}


def check(frame: dict) -> str:
    """Assert frame matches the contract; returns its type."""
    kind = frame["type"]
    keys = set(frame)
    if kind == "inform":
        grouped = {"group", "count"} if "group" in keys else set()
        assert keys - grouped in (INFORM, INFORM | COUNTERS), keys
        if grouped:
            assert isinstance(frame["group"], str) and isinstance(frame["count"], int) and frame["count"] >= 1
        assert isinstance(frame["id"], int) and frame["id"] > 0
        assert frame["verb"] in VERBS
        assert frame["actor"] is None or isinstance(frame["actor"], str)
        assert isinstance(frame["text"], str) and isinstance(frame["url"], str)
        datetime.fromisoformat(frame["created"])
        if "unread" in frame:
            assert isinstance(frame["unread"], int) and 0 <= frame["unseen"] <= frame["unread"]
    elif kind == "unread":
        assert keys == UNREAD and isinstance(frame["unread"], int) and 0 <= frame["unseen"] <= frame["unread"]
    elif kind == "feed":
        assert keys == FEED, keys
        assert frame["event"] in {"post", "reply", "site_update"}
        assert frame["actor"] is None or isinstance(frame["actor"], str)
        assert isinstance(frame["text"], str) and isinstance(frame["url"], str)
        datetime.fromisoformat(frame["created"])
    elif kind in ("synced", "reset"):
        assert keys == SYNCED and isinstance(frame["cursor"], int) and frame["cursor"] >= 0
    elif kind == "error":
        assert keys == ERROR and isinstance(frame["code"], str) and isinstance(frame["detail"], str)
    else:
        raise AssertionError(f"frame type {kind!r} is not in the contract")
    return kind


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_every_frame_on_the_wire_matches_the_contract(sockets, make_user):
    alice, bob = await db(make_user)("alice"), await db(make_user)("bob")
    a = await sockets.open(user=alice)
    anon = await sockets.open()

    async def take(s, n):
        return [await s.recv(timeout=10) for _ in range(n)]

    # personal informs of every verb (with unread), feed for posts and replies
    await db(blog.follow_toggle)(follower=bob, followed=alice)  # alice: inform
    post = await db(blog.post_create)(author=alice, title="t", body="b")  # feed
    await db(blog.reply_create)(author=bob, post=post, body="hi @alice")  # alice: inform (reply) + feed
    await db(blog.post_create)(author=bob, title="t2", body="@alice look")  # feed + alice: inform (mention)
    await db(send_inform)(everyone=True, verb="site_update", text="news", url="/")  # alice: inform, anon: feed
    seen_a = await take(a, 7)
    seen_anon = await take(anon, 4)
    # sync (informs without unread, then unread and synced), read_all (unread), a bad frame (error)
    await a.send({"type": "sync", "after": 0})
    seen_a += await take(a, 6)
    await a.send({"type": "read_all"})
    seen_a += await take(a, 1)
    await a.send({"type": "shout"})
    seen_a += await take(a, 1)
    await anon.send({"type": "read_all"})
    seen_anon += await take(anon, 1)
    assert await a.silent() and await anon.silent()

    kinds_a = [check(f) for f in seen_a]
    kinds_anon = [check(f) for f in seen_anon]
    assert set(kinds_a) == {"inform", "unread", "feed", "error", "synced"}
    assert set(kinds_anon) == {"feed", "error"}
    verbs = {f["verb"] for f in seen_a if f["type"] == "inform"}
    assert verbs == VERBS
    assert any("unread" in f for f in seen_a if f["type"] == "inform")  # live pushes carry it
    assert {f["event"] for f in seen_anon if f["type"] == "feed"} == {"post", "reply", "site_update"}


@pytest.mark.django_db
def test_builders_match_the_contract(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    (n,) = send_inform(to=alice, verb="follow", text="x", actor=bob, url="/u/bob/")
    (s,) = send_inform(everyone=True, verb="site_update", text="y")
    assert check(frames.inform_frame(n)) == "inform"
    assert set(frames.inform_frame(n, counters=Counters(3, 1))) == INFORM | COUNTERS
    assert frames.inform_frame(s)["actor"] is None
    assert check(frames.unread_frame(Counters(0, 0))) == "unread"
    assert check(frames.site_update_feed_frame(s)) == "feed"
    assert check(frames.feed_frame(key="post:1", event="post", actor="a", text="t", url="/", created=n.created)) == "feed"
    assert check(error_frame("bad_request", "why")) == "error"
    assert dumps({"a": 1}) == '{"a":1}'


@pytest.mark.parametrize(
    "text",
    [None, "", "nope", "[]", "{}", '{"type":"sync","after":-1}', '{"type":"read","ids":[]}', '{"type":"x"}'],
)
def test_client_frame_schema_refuses_bad_frames_in_words(text):
    with pytest.raises(BadFrame) as exc:
        frames.parse_client_frame(text)
    assert str(exc.value)


@pytest.mark.parametrize(
    "frame", ['{"type":"sync","after":0}', '{"type":"read","ids":[1,2]}', '{"type":"read_all"}']
)
def test_client_frame_schema_accepts_the_contracts_frames(frame):
    assert frames.parse_client_frame(frame)["type"] in {"sync", "read", "read_all"}
