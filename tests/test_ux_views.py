"""The no-browser half of issue 11: opening a notification, read state for open lists."""

from unittest.mock import ANY

import pytest

from inform import selectors
from inform.services import send_inform

pytestmark = pytest.mark.django_db


def test_opening_a_notification_marks_it_read_and_lands_on_its_target(as_alice, alice, bob):
    (n,) = send_inform(to=alice, verb="reply", actor=bob, text="bob replied", url="/posts/9/#reply-3")
    (other,) = send_inform(to=alice, verb="follow", actor=bob, text="bob followed you", url="/u/bob/")
    list_page = as_alice.get("/inform/").content.decode()
    assert f'href="/inform/{n.id}/open/"' in list_page  # the list links through the opener
    r = as_alice.get(f"/inform/{n.id}/open/")
    assert r.status_code == 302 and r["Location"] == "/posts/9/#reply-3"
    assert selectors.is_read(alice, type(n).objects.get(pk=n.pk))
    assert selectors.unread_count(alice) == 1
    assert as_alice.get(f"/inform/{n.id}/open/")["Location"] == "/posts/9/#reply-3"  # twice is fine
    assert selectors.unread_count(alice) == 1  # the other one is still unread
    assert not selectors.is_read(alice, other)


def test_opening_a_site_update_marks_it_read_for_this_user_only(as_alice, alice, bob):
    (n,) = send_inform(everyone=True, verb="site_update", text="contest soon", url="/posts/1/")
    assert as_alice.get(f"/inform/{n.id}/open/")["Location"] == "/posts/1/"
    assert selectors.unread_count(alice) == 0 and selectors.unread_count(bob) == 1


def test_opening_someone_elses_or_a_missing_notification_is_404(as_alice, alice, bob, client):
    (bobs,) = send_inform(to=bob, verb="follow", actor=alice, text="alice followed you", url="/u/alice/")
    assert as_alice.get(f"/inform/{bobs.id}/open/").status_code == 404
    assert as_alice.get("/inform/999999/open/").status_code == 404
    assert selectors.unread_count(bob) == 1
    r = client.get(f"/inform/{bobs.id}/open/")
    assert r.status_code == 302 and r["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("url", ["", "https://evil.example/"])
def test_opening_never_leaves_the_site(as_alice, alice, bob, url):
    (n,) = send_inform(to=alice, verb="mention", actor=bob, text="hi", url=url)
    assert as_alice.get(f"/inform/{n.id}/open/")["Location"] == "/inform/"


def test_opening_a_row_stored_around_the_url_check_still_stays_on_the_site(as_alice, alice, bob):
    from inform.models import Notification

    (n,) = send_inform(to=alice, verb="mention", actor=bob, text="hi", url="/")
    Notification.objects.filter(pk=n.pk).update(url="//evil.example/x")
    assert as_alice.get(f"/inform/{n.id}/open/")["Location"] == "/inform/"


def test_read_state_says_which_shown_items_are_read(as_alice, alice, bob):
    a, b = (send_inform(to=alice, verb="follow", actor=bob, text=f"n{i}")[0] for i in range(2))
    (site,) = send_inform(everyone=True, verb="site_update", text="s")
    (bobs,) = send_inform(to=bob, verb="follow", actor=alice, text="not alice's")
    as_alice.get(f"/inform/{a.id}/open/")
    as_alice.get(f"/inform/{site.id}/open/")
    r = as_alice.get(f"/inform/api/read-state/?ids={a.id},{b.id},{site.id},{bobs.id}")
    assert r.json() == {"read": sorted([a.id, site.id]), "unread": 1, "unseen": 1, "version": ANY}  # bob's id is not alice's to see
    assert as_alice.get("/inform/api/read-state/?ids=x").status_code == 400
    assert as_alice.get("/inform/api/read-state/").json() == {"read": [], "unread": 1, "unseen": 1, "version": ANY}


def test_read_state_is_json_401_for_anonymous(client):
    assert client.get("/inform/api/read-state/?ids=1").status_code == 401


def test_menu_api_lists_newest_unread_first_then_newest_read(as_alice, alice, bob, client):
    from inform.services import notifications_mark_read

    a, b, c = (send_inform(to=alice, verb="follow", actor=bob, text=t, url="/u/bob/")[0] for t in "abc")
    (site,) = send_inform(everyone=True, verb="site_update", text="site")
    notifications_mark_read(alice, [c.id, site.id])
    body = as_alice.get("/inform/api/menu/").json()
    assert [(i["text"], i["read"]) for i in body["items"]] == [("b", False), ("a", False), ("site", True), ("c", True)]
    assert body["items"][0]["open"] == f"/inform/{b.id}/open/" and body["unread"] == 2
    assert client.get("/inform/api/menu/").status_code == 401


# --- item 8: fuller content --------------------------------------------------------------


def test_excerpt_cuts_at_a_word_with_an_ellipsis():
    from mblog.services import excerpt

    assert excerpt("short  and\nsweet") == "short and sweet"
    long = "word " * 40
    cut = excerpt(long, 50)
    assert cut.endswith("word…") and len(cut) <= 50 and "  " not in cut
    assert excerpt("x" * 200, 50) == "x" * 49 + "…"  # one long word: cut inside it


def test_reply_and_mention_texts_name_the_post(alice, bob, make_user):
    from inform.models import Notification
    from mblog.services import post_create, reply_create

    carol = make_user("carol")
    post = post_create(author=alice, title="Two pointers", body="hi")
    reply_create(author=bob, post=post, body="nice one @carol " + "and more words " * 20)
    mine = Notification.objects.get(recipient=alice)
    theirs = Notification.objects.get(recipient=carol)
    assert mine.text.startswith("bob replied to “Two pointers”: nice one @carol")
    assert theirs.text.startswith("bob mentioned you in “Two pointers”: nice one")
    assert mine.text.endswith("…") and not mine.text.endswith(" …")


def test_following_again_tells_nobody_a_second_time(alice, bob):
    from inform.models import Notification
    from mblog.services import follow_toggle

    for _ in range(3):
        follow_toggle(follower=bob, followed=alice)
    assert Notification.objects.filter(recipient=alice, verb="follow").count() == 1


def test_mentions_in_posts_and_replies_link_known_people(as_alice, alice, bob):
    from mblog.services import post_create, reply_create

    post = post_create(author=alice, title="t", body="ask @bob, not @nobody.\n\n<b>bold</b> @bob.")
    reply_create(author=bob, post=post, body="thanks @alice")
    html = as_alice.get(f"/posts/{post.pk}/").content.decode()
    assert html.count('<a class="mention" href="/u/bob/">@bob</a>') == 2
    assert '<a class="mention" href="/u/alice/">@alice</a>' in html
    assert "@nobody." in html and 'href="/u/nobody/"' not in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "<b>bold</b>" not in html


def test_list_items_show_who_and_what(as_alice, alice, bob):
    send_inform(to=alice, verb="follow", actor=bob, text="bob followed you", url="/u/bob/")
    send_inform(everyone=True, verb="site_update", text="news")
    html = as_alice.get("/inform/").content.decode()
    assert '<span class="avatar hue-' in html and ">B</span>" in html
    assert 'class="verb verb-follow"' in html and 'class="verb verb-site_update"' in html
    assert '<span class="avatar hue-site" aria-hidden="true">m</span>' in html


# --- item 12: smaller things ---------------------------------------------------------------


def test_signup_says_welcome_and_shows_errors_beside_the_fields(client):
    r = client.post("/accounts/signup/", {"username": "newbie", "password1": "a-Long-pass-9876", "password2": "a-Long-pass-9876"},
                    follow=True)
    assert r.status_code == 200 and "Welcome to mblog, newbie!" in r.content.decode()
    client.logout()
    r = client.post("/accounts/signup/", {"username": "other", "password1": "a-Long-pass-9876", "password2": "nope"})
    assert r.status_code == 200 and 'class="errorlist' in r.content.decode()


def test_feed_names_site_updates_as_the_live_feed_does(client):
    send_inform(everyone=True, verb="site_update", text="contest soon")
    html = client.get("/").content.decode()
    assert '<span class="event">site update</span>' in html
