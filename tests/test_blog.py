"""The blog's announcements: follows, replies, @mentions and the live feed, through the
real views (signals → services → push) and real sockets."""

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async as db
from django.test import Client

from inform.models import Notification
from mblog import services
from mblog.errors import ApplicationError
from mblog.models import Follow, Post, Reply

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


def client_for(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def post_as(user, path, data):
    return client_for(user).post(path, data)


apost = sync_to_async(post_as)


def informs(user):
    return list(Notification.objects.filter(recipient=user).order_by("id").values_list("verb", "actor__username", "url"))


ainforms = db(informs)


async def test_follow_notifies_the_followed_live(sockets, make_user):
    alice, bob = await db(make_user)("alice"), await db(make_user)("bob")
    a = await sockets.open(user=alice)
    b = await sockets.open(user=bob)
    r = await apost(bob, "/u/alice/follow/", {})
    assert r.status_code == 302 and r["Location"] == "/u/alice/"
    frame = await a.recv()
    assert (frame["type"], frame["verb"], frame["actor"], frame["url"], frame["unread"]) == (
        "inform", "follow", "bob", "/u/bob/", 1,
    )
    assert await ainforms(alice) == [("follow", "bob", "/u/bob/")]
    assert await b.silent()


async def test_follow_toggle_unfollows_without_a_notification(sockets, make_user):
    alice, bob = await db(make_user)("alice"), await db(make_user)("bob")
    await apost(bob, "/u/alice/follow/", {})
    a = await sockets.open(user=alice)
    await apost(bob, "/u/alice/follow/", {})
    assert not await db(Follow.objects.filter(follower=bob, followed=alice).exists)()
    assert await a.silent()
    assert len(await ainforms(alice)) == 1
    await apost(bob, "/u/alice/follow/", {})  # following again: alice was told once already
    assert await db(Follow.objects.filter(follower=bob, followed=alice).exists)()
    assert await a.silent()
    assert len(await ainforms(alice)) == 1


async def test_a_live_follow_updates_the_follow_entry_in_every_socket(sockets, make_user):
    """Follows group in place (inform.services.group_keys): every tab gets the entry again
    with a new id, count and text, and the same group; the unread count stays at one; a
    socket resuming from before the group changed gets it once, in its latest state."""
    alice, bob, carol, dave = [await db(make_user)(n) for n in ("alice", "bob", "carol", "dave")]
    await apost(bob, "/u/alice/follow/", {})
    first = await db(Notification.objects.get)(recipient=alice)
    tabs = [await sockets.open(user=alice), await sockets.open(user=alice)]
    await apost(carol, "/u/alice/follow/", {})
    await apost(dave, "/u/alice/follow/", {})
    for tab in tabs:
        got = [await tab.recv_until("inform") for _ in range(2)]
        assert [(f["count"], f["text"], f["unread"]) for f in got] == [
            (2, "carol and bob followed you", 1), (3, "dave, carol and 1 more followed you", 1),
        ]
        assert {f["group"] for f in got} == {first.group} and got[0]["id"] < got[1]["id"]
        assert got[1]["actor"] == "dave" and got[1]["url"] == "/u/dave/"
    resumed = await sockets.open(user=alice)
    await resumed.send({"type": "sync", "after": first.id})
    again = await resumed.recv_until("inform")
    assert (again["id"], again["count"], again["group"]) == (got[1]["id"], 3, first.group)
    assert (await resumed.recv_until("unread"))["unread"] == 1
    assert (await resumed.recv_until("synced"))["cursor"] == got[1]["id"]
    assert await ainforms(alice) == [("follow", "dave", "/u/dave/")]


async def test_follow_yourself_or_anonymously_changes_nothing(make_user):
    alice = await db(make_user)("alice")
    r = await apost(alice, "/u/alice/follow/", {})
    assert r.status_code == 400
    r = await sync_to_async(Client().post)("/u/alice/follow/")
    assert r.status_code == 302 and r["Location"].startswith("/accounts/login/")
    r = await sync_to_async(lambda: client_for(alice).get("/u/alice/follow/"))()
    assert r.status_code == 405
    r = await apost(alice, "/u/nobody/follow/", {})
    assert r.status_code == 404
    assert await db(Follow.objects.count)() == 0 and await db(Notification.objects.count)() == 0


async def test_reply_to_a_post_notifies_its_author(sockets, make_user):
    alice, bob = await db(make_user)("alice"), await db(make_user)("bob")
    post = await db(services.post_create)(author=alice, title="Hello", body="first post")
    a = await sockets.open(user=alice)
    r = await apost(bob, f"/posts/{post.pk}/", {"body": "nice post"})
    reply = await db(Reply.objects.get)()
    assert r.status_code == 302 and r["Location"] == f"/posts/{post.pk}/#reply-{reply.pk}"
    frame = await a.recv()
    assert (frame["verb"], frame["actor"], frame["url"]) == ("reply", "bob", f"/posts/{post.pk}/#reply-{reply.pk}")
    assert "nice post" in frame["text"]
    assert await ainforms(bob) == []


async def test_reply_to_a_reply_notifies_that_replys_author(sockets, make_user):
    alice, bob, carol = [await db(make_user)(n) for n in ("alice", "bob", "carol")]
    post = await db(services.post_create)(author=alice, title="Hello", body="first post")
    first = await db(services.reply_create)(author=bob, post=post, body="first reply")
    a = await sockets.open(user=alice)
    b = await sockets.open(user=bob)
    await apost(carol, f"/posts/{post.pk}/", {"body": "answer to bob", "parent": first.pk})
    frame = await b.recv_until("inform")
    assert (frame["verb"], frame["actor"]) == ("reply", "carol")
    assert (await a.recv())["type"] == "feed"  # the post's author sees the reply in the feed only
    assert await a.silent()
    assert [v for v, *_ in await ainforms(bob)] == ["reply"]


async def test_reply_to_own_post_notifies_nobody(make_user):
    alice = await db(make_user)("alice")
    post = await db(services.post_create)(author=alice, title="Hello", body="first post")
    await apost(alice, f"/posts/{post.pk}/", {"body": "talking to myself"})
    assert await db(Notification.objects.count)() == 0


async def test_reply_parent_from_another_post_is_refused(make_user):
    alice, bob = await db(make_user)("alice"), await db(make_user)("bob")
    p1 = await db(services.post_create)(author=alice, title="one", body="x")
    p2 = await db(services.post_create)(author=alice, title="two", body="x")
    other = await db(services.reply_create)(author=bob, post=p1, body="on one")
    r = await apost(bob, f"/posts/{p2.pk}/", {"body": "sneaky", "parent": other.pk})
    assert r.status_code == 404
    assert await db(Reply.objects.count)() == 1
    with pytest.raises(ApplicationError):
        await db(services.reply_create)(author=bob, post=p2, parent=other, body="x")


async def test_mention_in_a_post_notifies_the_mentioned(sockets, make_user):
    alice, bob, carol = [await db(make_user)(n) for n in ("alice", "bob", "carol")]
    b = await sockets.open(user=bob)
    c = await sockets.open(user=carol)
    r = await apost(alice, "/posts/new/", {"title": "Hi", "body": "thanks @bob, and @nobody, mail me at x@carol.com, @alice"})
    post = await db(Post.objects.get)()
    assert r.status_code == 302 and r["Location"] == f"/posts/{post.pk}/"
    frame = await b.recv_until("inform")
    assert (frame["verb"], frame["actor"], frame["url"]) == ("mention", "alice", f"/posts/{post.pk}/")
    assert await c.recv_until("feed")  # carol sees the post in the feed, but no mention
    assert await c.silent()
    assert await ainforms(alice) == [] and await ainforms(carol) == []


async def test_mention_in_a_reply_notifies_the_mentioned_once(make_user):
    alice, bob, carol = [await db(make_user)(n) for n in ("alice", "bob", "carol")]
    post = await db(services.post_create)(author=alice, title="Hello", body="x")
    await apost(bob, f"/posts/{post.pk}/", {"body": "@carol look. @alice too."})
    assert [v for v, *_ in await ainforms(carol)] == ["mention"]
    assert [v for v, *_ in await ainforms(alice)] == ["reply"]  # the reply covers the mention
    assert await ainforms(bob) == []


async def test_posts_and_replies_reach_anonymous_and_signed_in_sockets_as_feed(sockets, make_user):
    alice, bob = await db(make_user)("alice"), await db(make_user)("bob")
    anon = await sockets.open()
    b = await sockets.open(user=bob)
    await apost(alice, "/posts/new/", {"title": "Live title", "body": "body"})
    post = await db(Post.objects.get)()
    frame = await anon.recv()
    assert frame == {
        "type": "feed", "key": f"post:{post.pk}", "event": "post", "actor": "alice", "text": "Live title", "url": f"/posts/{post.pk}/",
        "created": post.created.isoformat(),
    }
    assert await b.recv() == frame
    await apost(bob, f"/posts/{post.pk}/", {"body": "a reply"})
    frame = await anon.recv()
    assert (frame["type"], frame["event"], frame["actor"]) == ("feed", "reply", "bob")
    assert "a reply" in frame["text"] and frame["url"].startswith(f"/posts/{post.pk}/#reply-")
    assert await anon.silent()  # the reply notification to alice is not for anonymous eyes


async def test_anonymous_cannot_post_or_reply(make_user):
    alice = await db(make_user)("alice")
    post = await db(services.post_create)(author=alice, title="Hello", body="x")
    c = Client()
    r = await sync_to_async(c.post)("/posts/new/", {"title": "t", "body": "b"})
    assert r.status_code == 302 and r["Location"].startswith("/accounts/login/")
    r = await sync_to_async(c.post)(f"/posts/{post.pk}/", {"body": "b"})
    assert r.status_code == 302 and r["Location"].startswith("/accounts/login/")
    assert await db(Post.objects.count)() == 1 and await db(Reply.objects.count)() == 0
