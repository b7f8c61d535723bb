"""Issue 13.1: replies to one post, and follows within a window, are one entry per person
while it is unread, stored again with a new id at each change (so streams and resume
points stay exact and the unread count does not move); mentions and site updates never
group."""

from unittest.mock import ANY

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from inform import selectors, services
from inform.models import Notification
from inform.services import send_inform
from mblog import services as blog

pytestmark = pytest.mark.django_db


@pytest.fixture
def post(alice):
    return blog.post_create(author=alice, title="Two pointers", body="b")


def test_ten_replies_are_one_entry_updated_in_place(capture_pushes, make_user, alice, post):
    repliers = [make_user(f"r{i}") for i in range(10)]
    with capture_pushes() as pushes:
        for r in repliers:
            blog.reply_create(author=r, post=post, body=f"from {r.username}")
    (row,) = Notification.objects.filter(recipient=alice)
    assert (row.count, row.actors, row.group) == (10, ["r9", "r8", "r7"], f"reply:post:{post.pk}")
    assert row.text == "r9, r8 and 8 more replied to “Two pointers”"
    assert row.url.endswith(f"#reply-{post.replies.last().pk}") and row.actor == repliers[-1]
    frames = [f for f in pushes.frames(f"user.{alice.pk}") if f["type"] == "inform"]
    assert [f["count"] for f in frames] == list(range(1, 11))
    assert {f["group"] for f in frames} == {row.group}
    assert [f["id"] for f in frames] == sorted(f["id"] for f in frames) and frames[-1]["id"] == row.id
    assert frames[0]["text"] == "r0 replied to “Two pointers”: from r0"
    assert frames[1]["text"] == "r1 and r0 replied to “Two pointers”"
    # The badge never double-counts: every push said one unread.
    assert {(f["unread"], f["unseen"]) for f in frames} == {(1, 1)}
    assert selectors.latest_notification_id() == row.id


def test_a_client_behind_gets_the_group_once_in_its_latest_state(make_user, alice, post):
    bob, carol = make_user("bob"), make_user("carol")
    blog.reply_create(author=bob, post=post, body="one")
    cursor = selectors.latest_notification_id()
    blog.reply_create(author=carol, post=post, body="two")
    blog.reply_create(author=bob, post=post, body="three")
    (n,) = selectors.notifications_after(alice, cursor, 50)
    assert (n.count, n.actors, n.text) == (3, ["bob", "carol"], "bob, carol and 1 more replied to “Two pointers”")
    assert selectors.notifications_after(alice, 0, 50) == [n]


def test_reading_the_group_reads_all_of_it_and_the_next_reply_starts_a_new_one(make_user, alice, post):
    bob, carol = make_user("bob"), make_user("carol")
    blog.reply_create(author=bob, post=post, body="one")
    blog.reply_create(author=carol, post=post, body="two")
    (group,) = Notification.objects.filter(recipient=alice)
    assert services.notifications_mark_read(alice, [group.id]) == 0
    blog.reply_create(author=bob, post=post, body="three")
    rows = list(Notification.objects.filter(recipient=alice).order_by("id"))
    assert [(r.id == group.id, r.count, r.read_at is None) for r in rows] == [(True, 2, False), (False, 1, True)]
    assert selectors.counters(alice) == (1, 1, ANY)


def test_mentions_and_site_updates_never_group(make_user, alice, post):
    bob = make_user("bob")
    for i in range(3):
        blog.post_create(author=bob, title=f"t{i}", body="hi @alice")
        send_inform(everyone=True, verb="site_update", text=f"update {i}")
    assert Notification.objects.filter(recipient=alice, verb="mention").count() == 3
    assert Notification.objects.filter(recipient=None).count() == 3
    assert not Notification.objects.exclude(group="").exists()


def test_groups_are_per_person_and_per_post(make_user, alice, post):
    bob, carol, dave = make_user("bob"), make_user("carol"), make_user("dave")
    other = blog.post_create(author=alice, title="Other", body="b")
    services.topic_set(dave, blog.topic_of(post), "watch")
    for who in (bob, carol):
        blog.reply_create(author=who, post=post, body="x")
    blog.reply_create(author=bob, post=other, body="y")
    assert sorted(Notification.objects.filter(recipient=alice).values_list("count", flat=True)) == [1, 2]
    (d,) = Notification.objects.filter(recipient=dave)
    assert d.count == 2 and d.text == "carol and bob replied to “Two pointers”"


def test_a_grouped_reply_costs_one_delete_more(make_user, alice, post, django_assert_max_num_queries):
    bob, carol = make_user("bob"), make_user("carol")
    send_inform(to=alice, verb="reply", actor=bob, text="first", topic=f"post:{post.pk}", summary="replied")
    # savepoint, advisory lock, recipients with their open groups, counters version, delete, insert, release
    with django_assert_max_num_queries(7):
        (n,) = send_inform(to=alice, verb="reply", actor=carol, text="x", topic=f"post:{post.pk}", summary="replied")
    assert n.count == 2


def test_expiry_and_groups(make_user, alice, post):
    bob = make_user("bob")
    blog.reply_create(author=bob, post=post, body="one")
    blog.reply_create(author=bob, post=post, body="two")
    (n,) = Notification.objects.filter(recipient=alice)
    assert n.actors == ["bob"] and n.text == "bob and 1 more replied to “Two pointers”"
    services.notifications_mark_read(alice, [n.id])
    Notification.objects.filter(pk=n.pk).update(created=timezone.now() - timezone.timedelta(days=100))
    send_inform(to=bob, verb="follow", text="newest", actor=alice)
    assert services.notifications_expire(timezone.now() - timezone.timedelta(days=90)) == (1, 0)


def test_a_reply_costs_the_same_queries_for_20_or_200_watchers(make_user, alice, post):
    """The issue's 1,000 replies on a post with 200 watchers, in query terms: each reply
    is one statement per step whatever the number of watchers, and every watcher ends
    with one grouped entry."""
    from django.contrib.auth import get_user_model

    User = get_user_model()
    User.objects.bulk_create([User(username=f"w{i}", password="!") for i in range(200)])
    watchers = list(User.objects.filter(username__startswith="w"))
    repliers = [make_user(f"r{i}") for i in range(3)]

    def reply_queries(k: int) -> int:
        with CaptureQueriesContext(connection) as ctx:
            blog.reply_create(author=repliers[k % 3], post=post, body=f"reply {k}")
        return len(ctx.captured_queries)

    for w in watchers[:20]:
        services.topic_set(w, blog.topic_of(post), "watch")
    reply_queries(0)  # the groups exist from here on: every later reply replaces them
    few = reply_queries(1)
    for w in watchers[20:]:
        services.topic_set(w, blog.topic_of(post), "watch")
    reply_queries(2)
    assert reply_queries(3) == few
    counts = set(Notification.objects.filter(recipient__in=watchers[:20]).values_list("count", flat=True))
    assert counts == {4} and Notification.objects.filter(recipient__in=watchers).count() == 200
    assert Notification.objects.filter(recipient=alice).get().count == 4


# --- follows: the same grouping, within a window (INFORM_FOLLOW_GROUP_WINDOW) -----------


def follow(who, whom):
    from mblog.models import Follow

    Follow.objects.create(follower=who, followed=whom)


def test_follows_within_the_window_are_one_entry_updated_in_place(capture_pushes, make_user, alice):
    people = [make_user(n) for n in ("bob", "carol", "dave", "erin")]
    with capture_pushes() as pushes:
        for p in people:
            follow(p, alice)
    (row,) = Notification.objects.filter(recipient=alice)
    assert (row.count, row.actors, row.actor) == (4, ["erin", "dave", "carol"], people[-1])
    assert row.text == "erin, dave and 2 more followed you" and row.url == "/u/erin/"
    assert row.group.startswith("follow:") and row.verb == "follow"
    frames = [f for f in pushes.frames(f"user.{alice.pk}") if f["type"] == "inform"]
    assert [f["count"] for f in frames] == [1, 2, 3, 4]
    assert [f["text"] for f in frames[:2]] == ["bob followed you", "carol and bob followed you"]
    assert {f["group"] for f in frames} == {row.group}
    assert [f["id"] for f in frames] == sorted(f["id"] for f in frames) and frames[-1]["id"] == row.id
    assert {(f["unread"], f["unseen"]) for f in frames} == {(1, 1)}  # never double-counts
    assert selectors.notifications_after(alice, 0, 50) == [row]


def test_a_follow_after_the_window_starts_a_new_entry(settings, make_user, alice):
    bob, carol, dave = make_user("bob"), make_user("carol"), make_user("dave")
    follow(bob, alice)
    follow(carol, alice)
    (old,) = Notification.objects.filter(recipient=alice)
    # The group started just over a window ago: its key says when.
    started = int(old.group.split(":")[1]) - settings.INFORM_FOLLOW_GROUP_WINDOW - 1
    Notification.objects.filter(pk=old.pk).update(group=f"follow:{started:010d}")
    follow(dave, alice)
    rows = list(Notification.objects.filter(recipient=alice).order_by("id"))
    assert [(r.id == old.id, r.count, r.text) for r in rows] == [
        (True, 2, "carol and bob followed you"), (False, 1, "dave followed you")
    ]
    assert rows[0].group != rows[1].group  # a client keeps both: the older one is not replaced
    assert selectors.counters(alice) == (2, 2, ANY)


def test_reading_a_follow_group_reads_all_of_it_and_the_next_follow_starts_a_new_one(make_user, alice):
    bob, carol, dave = make_user("bob"), make_user("carol"), make_user("dave")
    follow(bob, alice)
    follow(carol, alice)
    (group,) = Notification.objects.filter(recipient=alice)
    assert services.notifications_mark_read(alice, [group.id]) == 0
    follow(dave, alice)
    rows = list(Notification.objects.filter(recipient=alice).order_by("id"))
    assert [(r.count, r.read_at is None) for r in rows] == [(2, False), (1, True)]
    assert selectors.counters(alice) == (1, 1, ANY)


def test_following_again_is_not_counted_twice(make_user, alice):
    from mblog import services as blog_services

    bob, carol = make_user("bob"), make_user("carol")
    follow(bob, alice)
    follow(carol, alice)
    assert blog_services.follow_toggle(follower=bob, followed=alice) is False
    assert blog_services.follow_toggle(follower=bob, followed=alice) is True
    (row,) = Notification.objects.filter(recipient=alice)
    assert (row.count, row.text) == (2, "carol and bob followed you")


def test_follow_groups_are_per_person_and_respect_preferences(make_user, alice, bob):
    carol, dave = make_user("carol"), make_user("dave")
    services.person_mute(bob, dave)
    for who in (carol, dave):
        follow(who, alice)
        follow(who, bob)
    assert Notification.objects.get(recipient=alice).count == 2
    (b,) = Notification.objects.filter(recipient=bob)
    assert (b.count, b.text) == (1, "carol followed you")
    services.preferences_save(alice, {"follow": "off"})
    follow(make_user("erin"), alice)
    assert Notification.objects.get(recipient=alice).count == 2


def test_follows_never_group_with_a_zero_window(settings, make_user, alice):
    settings.INFORM_FOLLOW_GROUP_WINDOW = 0
    for n in ("bob", "carol"):
        follow(make_user(n), alice)
    assert list(Notification.objects.filter(recipient=alice).values_list("group", "count")) == [("", 1), ("", 1)]


def test_mentions_chat_mentions_and_site_updates_never_group_even_with_a_summary(make_user, alice):
    """One place decides (services.group_keys): a caller passing a summary cannot make
    them group."""
    bob, carol = make_user("bob"), make_user("carol")
    for who in (bob, carol):
        send_inform(to=alice, verb="mention", actor=who, text="hi", topic="post:1", summary="mentioned you")
        send_inform(to=alice, verb="mention", actor=who, text="hi", topic="room:1", summary="mentioned you")
    send_inform(everyone=True, verb="site_update", text="one", summary="x")
    send_inform(everyone=True, verb="site_update", text="two", summary="x")
    assert not Notification.objects.exclude(group="").exists()
    assert Notification.objects.filter(recipient=alice).count() == 4
    for kind in ("mention", "chat_mention", "site_update"):
        assert services.group_keys(kind, "post:1") is None


def test_a_grouped_follow_costs_one_delete_more(make_user, alice, django_assert_max_num_queries):
    bob, carol = make_user("bob"), make_user("carol")
    send_inform(to=alice, verb="follow", actor=bob, text="bob followed you", summary="followed you")
    # savepoint, advisory lock, recipients with their open groups, counters version, delete, insert, release
    with django_assert_max_num_queries(7):
        (n,) = send_inform(to=alice, verb="follow", actor=carol, text="carol followed you", summary="followed you")
    assert n.count == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_replies_to_one_post_stay_one_entry_for_the_author_and_each_watcher(make_user, alice):
    """Eight replies at once, from eight threads (eight connections): the author and a
    watcher each end with one open entry of count 8, and the counters the pushes carry
    rise with their versions (the state rows are locked before the groups are read)."""
    import threading

    from django.db import connections

    watcher = make_user("watcher")
    services.topic_set(watcher, "post:77", "watch")
    repliers = [make_user(f"r{i}") for i in range(8)]
    start, errors, sent = threading.Barrier(len(repliers)), [], []

    def reply(actor):
        try:
            start.wait()
            sent.extend(send_inform(to=alice, actor=actor, verb="reply", text="r", topic="post:77",
                                    summary="replied to “P”"))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=reply, args=(r,)) for r in repliers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    for person in (alice, watcher):
        (row,) = Notification.objects.filter(recipient=person, read_at=None)
        assert (row.count, row.group) == (8, "reply:post:77")
        assert selectors.counters(person).unread == 1
    assert len(sent) == 16
