"""Issue 13.3: preferences, enforced inside send_inform (pushes captured in process),
and the pages that set them, which work without JavaScript."""

from unittest.mock import ANY

import pytest
from django.core import mail
from django.db import transaction
from django.test import Client

from chat.services import chat_message_post, room_get_or_create
from inform import selectors, services
from inform.models import InformState, Notification, PersonMute, TopicPreference
from inform.services import InformError, send_inform
from mblog import services as blog

pytestmark = pytest.mark.django_db


def prefer(user, **deliveries):
    services.preferences_save(user, deliveries)


def told(pushes) -> list[tuple[str, str]]:
    """(group, text) of every inform frame pushed."""
    return [(g, body["frame"]["text"]) for g, body in pushes if body["frame"]["type"] == "inform"]


@pytest.fixture
def people(make_user):
    return [make_user(n, email=f"{n}@example.com") for n in ("alice", "bob", "carol", "dave")]


# --- per kind: on site / by email / off ---------------------------------------------


def test_a_kind_turned_off_stores_and_pushes_nothing_for_that_person(capture_pushes, people):
    alice, bob, carol, _ = people
    prefer(alice, follow="off")
    with capture_pushes() as pushes:
        sent = send_inform(to=[alice, carol], verb="follow", text="bob followed you", actor=bob)
        mentioned = send_inform(to=alice, verb="mention", text="bob mentioned you", actor=bob)
    assert [n.recipient_id for n in sent] == [carol.pk]
    assert [n.recipient_id for n in mentioned] == [alice.pk]  # other kinds still on
    assert told(pushes) == [(f"user.{carol.pk}", "bob followed you"), (f"user.{alice.pk}", "bob mentioned you")]
    assert not Notification.objects.filter(recipient=alice, verb="follow").exists()


def test_by_email_stores_pushes_and_mails_after_commit(capture_pushes, people):
    alice, bob, carol, _ = people
    prefer(alice, reply="email")
    with capture_pushes() as pushes:
        send_inform(to=[alice, carol], verb="reply", text="bob replied to “Sorting”", actor=bob, url="/posts/9/#reply-3")
        assert mail.outbox == []  # not before the commit
    assert len(told(pushes)) == 2
    (m,) = mail.outbox
    assert m.to == ["alice@example.com"] and "bob replied to “Sorting”" in m.subject
    assert "/posts/9/#reply-3" in m.body and "/inform/settings/" in m.body


def test_a_rolled_back_notification_is_never_mailed(capture_pushes, people):
    alice, bob, _, _ = people
    prefer(alice, mention="email")
    with capture_pushes() as pushes:
        with pytest.raises(RuntimeError), transaction.atomic():
            send_inform(to=alice, verb="mention", text="hi", actor=bob)
            raise RuntimeError("the request failed after the notification")
    assert pushes == [] and mail.outbox == []


def test_a_failing_mail_server_never_fails_the_notification(capture_pushes, people, settings):
    alice, bob, _, _ = people
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 1  # nothing listens
    prefer(alice, follow="email")
    with capture_pushes() as pushes:
        (n,) = send_inform(to=alice, verb="follow", text="bob followed you", actor=bob)
    assert Notification.objects.filter(pk=n.pk).exists() and len(told(pushes)) == 1


def test_site_updates_by_email_go_to_those_who_chose_it(capture_pushes, people):
    alice, bob, carol, _ = people
    prefer(alice, site_update="email")
    prefer(bob, site_update="off")
    with capture_pushes():
        send_inform(everyone=True, verb="site_update", text="Contest at 20:00")
    assert [m.to for m in mail.outbox] == [["alice@example.com"]]


def test_site_updates_off_leave_the_stream_and_the_counts(capture_pushes, people):
    alice, bob, _, _ = people
    with capture_pushes():
        (s,) = send_inform(everyone=True, verb="site_update", text="We moved")
        send_inform(to=alice, verb="follow", text="bob followed you", actor=bob)
    assert selectors.counters(alice) == (2, 2, ANY)
    with capture_pushes() as pushes:
        prefer(alice, site_update="off")
    assert pushes.frames(f"user.{alice.pk}") == [{"type": "unread", "unread": 1, "unseen": 1, "version": ANY}]
    assert s.id not in set(selectors.stream(alice).values_list("id", flat=True))
    assert selectors.counters(bob) == (1, 1, ANY)  # bob still has it
    prefer(alice, site_update="site")
    assert selectors.counters(alice) == (2, 2, ANY)


def test_chat_mentions_are_a_kind_of_their_own(capture_pushes, people):
    alice, bob, _, _ = people
    prefer(bob, chat_mention="off")
    lobby = room_get_or_create(name="lobby")
    post = blog.post_create(author=alice, title="Graphs", body="see @bob")  # a post mention still arrives
    with capture_pushes():
        chat_message_post(room=lobby, author=alice, text="@bob look")
    assert list(Notification.objects.filter(recipient=bob).values_list("verb", "topic")) == [
        ("mention", f"post:{post.pk}")
    ]


def test_unknown_kinds_or_deliveries_are_refused(people):
    with pytest.raises(InformError):
        services.preferences_save(people[0], {"follow": "pigeon", "reply": "off"})
    with pytest.raises(InformError):
        services.preferences_save(people[0], {"likes": "off"})
    assert InformState.objects.get(user=people[0]).reply == "site"


# --- muting people and topics, watching posts ----------------------------------------


def test_a_muted_person_notifies_nobody_who_muted_them(capture_pushes, people):
    alice, bob, carol, _ = people
    services.person_mute(alice, bob)
    with capture_pushes() as pushes:
        send_inform(to=[alice, carol], verb="mention", text="bob mentioned you", actor=bob)
        send_inform(to=alice, verb="mention", text="carol mentioned you", actor=carol)
        (s,) = send_inform(everyone=True, verb="site_update", text="from bob, staff", actor=bob)
    assert [t for g, t in told(pushes) if g == f"user.{alice.pk}"] == ["carol mentioned you"]
    assert selectors.stream(alice).filter(pk=s.pk).exists()  # site updates excepted
    services.person_mute(alice, bob, on=False)
    assert send_inform(to=alice, verb="follow", text="bob followed you", actor=bob)
    with pytest.raises(InformError):
        services.person_mute(alice, alice)


def test_a_muted_post_sends_nothing_about_it(capture_pushes, people):
    alice, bob, carol, _ = people
    muted = blog.post_create(author=alice, title="Muted", body="b")
    other = blog.post_create(author=alice, title="Other", body="b")
    services.topic_set(alice, blog.topic_of(muted), "mute")
    with capture_pushes() as pushes:
        blog.reply_create(author=bob, post=muted, body="a reply, @alice")
        blog.reply_create(author=carol, post=other, body="another")
    assert [t for g, t in told(pushes)] == ["carol replied to “Other”: another"]


def test_watchers_hear_of_every_reply_under_the_post_once(capture_pushes, people):
    alice, bob, carol, dave = people
    post = blog.post_create(author=alice, title="Trees", body="b")
    services.topic_set(dave, blog.topic_of(post), "watch")
    services.topic_set(carol, blog.topic_of(post), "watch")
    first = blog.reply_create(author=bob, post=post, body="first")
    with capture_pushes() as pushes:
        # A reply to bob's reply: bob is told as the replied-to person, the watchers as
        # watchers; carol, watching and mentioned, once; alice (author, not watching) not.
        blog.reply_create(author=carol, post=post, parent=first, body="@dave nested")
    assert sorted(g for g, _ in told(pushes)) == sorted([f"user.{bob.pk}", f"user.{dave.pk}"])
    (d,) = Notification.objects.filter(recipient=dave)  # both replies, grouped; no extra mention
    assert d.count == 2
    services.topic_set(dave, blog.topic_of(post), "")
    assert not TopicPreference.objects.filter(user=dave).exists()


def test_topics_are_checked(people):
    for bad in ("", "post:", "post:x", "user:1", "post:1 "):
        with pytest.raises(InformError):
            services.topic_set(people[0], bad, "mute")
    with pytest.raises(InformError):
        services.topic_set(people[0], "post:1", "ignore")
    with pytest.raises(InformError):
        send_inform(to=people[0], verb="reply", text="x", topic="post:1; drop")


# --- cost ---------------------------------------------------------------------------


def test_preferences_cost_one_query_whatever_the_recipients(people, make_user, django_assert_max_num_queries):
    alice, bob, _, _ = people
    others = [make_user(f"u{i}") for i in range(20)]
    for u in others[:5]:
        services.person_mute(u, alice)
    for u in others[5:10]:
        prefer(u, mention="off")
    # savepoint, recipients (one query), advisory lock, counters versions (one update), one insert, release
    with django_assert_max_num_queries(6):
        sent = send_inform(to=others, verb="mention", text="hi all", actor=alice, topic="post:1")
    assert len(sent) == 10


# --- pages (no JavaScript needed) ------------------------------------------------------


@pytest.fixture
def as_(people):
    def client(user):
        c = Client()
        c.force_login(user)
        return c

    return client


def test_settings_page_is_a_plain_form_that_saves(as_, people):
    alice = people[0]
    c = as_(alice)
    html = c.get("/inform/settings/").content.decode()
    assert 'name="follow" value="site"' in html and 'id="pref-follow-site" checked' in html
    r = c.post("/inform/settings/", {"follow": "off", "reply": "email", "mention": "site",
                                    "site_update": "site", "chat_mention": "off"})
    assert r.status_code == 302 and r["Location"] == "/inform/settings/"
    state = InformState.objects.get(user=alice)
    assert (state.follow, state.reply, state.chat_mention) == ("off", "email", "off")
    html = c.get("/inform/settings/").content.decode()
    assert 'id="pref-follow-off" checked' in html and "Notification settings saved." in html
    assert c.post("/inform/settings/", {"follow": "loud"}).status_code == 400
    assert Client().get("/inform/settings/").status_code == 302  # sign in first


def test_mute_a_person_from_their_profile_and_unmute_from_settings(as_, people):
    alice, bob, _, _ = people
    c = as_(alice)
    assert "Mute notifications from bob" in c.get("/u/bob/").content.decode()
    r = c.post("/inform/mute/", {"username": "bob", "on": "1", "next": "/u/bob/"})
    assert r.status_code == 302 and r["Location"] == "/u/bob/"
    assert PersonMute.objects.filter(user=alice, muted=bob).exists()
    assert "Unmute notifications from bob" in c.get("/u/bob/").content.decode()
    assert "bob" in c.get("/inform/settings/").content.decode()
    c.post("/inform/mute/", {"username": "bob", "on": "0", "next": "https://evil.example/"})
    assert not PersonMute.objects.exists()
    assert c.post("/inform/mute/", {"username": "alice", "on": "1"}).status_code == 400
    assert c.post("/inform/mute/", {"username": "nobody", "on": "1"}).status_code == 404


def test_watch_and_mute_a_post_from_its_page(as_, people):
    alice, bob, _, _ = people
    post = blog.post_create(author=bob, title="Heaps", body="b")
    c = as_(alice)
    html = c.get(post.get_absolute_url()).content.decode()
    assert 'id="watch-post"' in html and 'id="mute-post"' in html
    c.post("/inform/topic/", {"topic": f"post:{post.pk}", "state": "watch", "next": post.get_absolute_url()})
    html = c.get(post.get_absolute_url()).content.decode()
    assert "Watching: every reply notifies you." in html and 'id="watch-post"' not in html
    assert TopicPreference.objects.get(user=alice).watch is True
    assert c.post("/inform/topic/", {"topic": "post:abc", "state": "watch"}).status_code == 400


def test_stop_notifying_me_about_this_offers_each_way_and_each_works(as_, people, capture_pushes):
    alice, bob, carol, _ = people
    post = blog.post_create(author=alice, title="DP", body="b")
    with capture_pushes():
        blog.reply_create(author=bob, post=post, body="hello")
    n = Notification.objects.get(recipient=alice)
    c = as_(alice)
    assert f'href="/inform/{n.id}/stop/"' in c.get("/inform/").content.decode()
    html = c.get(f"/inform/{n.id}/stop/").content.decode()
    assert 'id="stop-topic"' in html and "Mute this post" in html
    assert 'id="stop-person"' in html and "Mute bob" in html
    assert 'id="stop-kind"' in html and 'name="reply" value="off"' in html
    # Turning the kind off from there changes that kind only.
    r = c.post("/inform/settings/", {"reply": "off", "next": "/inform/"})
    assert r.status_code == 302 and r["Location"] == "/inform/"
    state = InformState.objects.get(user=alice)
    assert (state.reply, state.follow, state.mention) == ("off", "site", "site")
    # Someone else's notification is not yours to look at.
    assert as_(carol).get(f"/inform/{n.id}/stop/").status_code == 404
