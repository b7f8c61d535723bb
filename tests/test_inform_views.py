"""Pages work without JavaScript: they render, the badge is right in the HTML, the
notification list is newest first and paginated, and its plain forms mark things read."""

from html.parser import HTMLParser

import pytest
from django.test import Client

from inform import selectors
from inform.models import Notification
from inform.services import send_inform
from mblog import services as blog
from mblog.models import User

from .conftest import PASSWORD

pytestmark = pytest.mark.django_db


class Page(HTMLParser):
    """The bits of a page the tests look at: the badge, forms, list items."""

    def __init__(self, html: str):
        super().__init__()
        self.badge: dict | None = None
        self.badge_text = ""
        self.new_text = ""
        self._in = None  # "badge" or "new" while inside one of them
        self.forms: list[dict] = []
        self.items: list[dict] = []
        self.feed_text: list[str] = []
        self._in_feed_text = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id") == "inform-badge":
            assert self.badge is None, "two badges on one page"
            self.badge, self._in = a, "badge"
        if a.get("id") == "inform-new":
            self._in = "new"
        if tag == "form":
            self.forms.append({"action": a.get("action"), "method": (a.get("method") or "get").lower(), "inputs": {}})
        if tag in ("input", "button", "textarea") and self.forms and a.get("name"):
            self.forms[-1]["inputs"][a["name"]] = a.get("value")
        if tag == "li" and "inform-item" in (a.get("class") or ""):
            self.items.append({"id": int(a["data-id"]), "unread": "unread" in a["class"].split()})
        if tag == "a" and a.get("class") == "text":
            self._in_feed_text = True

    def handle_endtag(self, tag):
        if tag == "span":
            self._in = None
        if tag == "a":
            self._in_feed_text = False

    def handle_data(self, data):
        if self._in == "badge":
            self.badge_text += data
        elif self._in == "new":
            self.new_text += data
        if self._in_feed_text:
            self.feed_text.append(data.strip())

    @property
    def unseen(self) -> int:
        """What the "new" mark shows: new since the list or the menu was last opened."""
        text = self.new_text.strip()
        return int(text) if text else 0

    @property
    def unread(self) -> int:
        """What the badge shows (CONTRACT: its text is the unread count)."""
        assert self.badge is not None, "no #inform-badge on the page"
        text = self.badge_text.strip()
        assert int(self.badge.get("data-unread") or 0) == (int(text) if text else 0)
        return int(text) if text else 0


def page(client: Client, path: str, status: int = 200) -> Page:
    r = client.get(path)
    assert r.status_code == status, (path, r.status_code)
    return Page(r.content.decode())


def fill(alice, bob, personal=3, site=2):
    ns = [send_inform(to=alice, verb="follow", text=f"p{i}", actor=bob)[0] for i in range(personal)]
    ns += [send_inform(everyone=True, verb="site_update", text=f"s{i}")[0] for i in range(site)]
    return ns


@pytest.mark.parametrize("path", ["/", "/accounts/login/", "/accounts/signup/", "/u/alice/"])
def test_pages_render_for_anonymous_with_an_empty_badge(client, alice, path):
    p = page(client, path)
    assert p.unread == 0


@pytest.mark.parametrize("path", ["/", "/u/alice/", "/u/bob/", "/posts/new/", "/inform/"])
def test_every_page_shows_the_right_badge_without_javascript(as_alice, alice, bob, path):
    assert page(as_alice, path).unread == 0
    fill(alice, bob)
    p = page(as_alice, path)
    assert p.unread == 5
    assert "hidden" not in p.badge
    if path.startswith("/inform/"):  # opening the list: all of it seen, still unread
        assert p.unseen == 0
    else:
        assert p.unseen == 5


def test_badge_follows_reads(as_alice, alice, bob):
    ns = fill(alice, bob)
    as_alice.post("/inform/read/", {"id": [ns[0].id, ns[-1].id]})
    assert page(as_alice, "/").unread == 3
    as_alice.post("/inform/read/", {"all": "1"})
    p = page(as_alice, "/")
    assert p.unread == 0 and "hidden" in p.badge


def test_home_lists_posts_replies_and_site_updates_newest_first(client, alice, bob):
    post = blog.post_create(author=alice, title="A title", body="body")
    blog.reply_create(author=bob, post=post, body="a reply")
    send_inform(everyone=True, verb="site_update", text="We moved")
    p = page(client, "/")
    assert p.feed_text[0] == "We moved"
    assert p.feed_text[-1] == "A title"
    assert any("a reply" in t for t in p.feed_text)


def test_profile_has_a_follow_form_posting_to_the_follow_url(as_alice, alice, bob):
    p = page(as_alice, "/u/bob/")
    (form,) = [f for f in p.forms if f["action"] == "/u/bob/follow/"]
    assert form["method"] == "post" and "csrfmiddlewaretoken" in form["inputs"]
    r = as_alice.post("/u/bob/follow/")
    assert r.status_code == 302
    r = as_alice.get("/u/bob/")
    assert b"Unfollow" in r.content and b'id="follower-count">1<' in r.content
    # no follow form on your own profile, none for anonymous visitors
    assert not [f for f in page(as_alice, "/u/alice/").forms if f["action"] == "/u/alice/follow/"]
    assert not [f for f in page(Client(), "/u/bob/").forms if f["action"] == "/u/bob/follow/"]


def test_unknown_profile_and_post_are_404(client):
    assert client.get("/u/nobody/").status_code == 404
    assert client.get("/posts/999999/").status_code == 404


def test_post_detail_shows_replies_and_reply_forms(as_alice, alice, bob):
    post = blog.post_create(author=bob, title="Bob's post", body="hello")
    first = blog.reply_create(author=alice, post=post, body="first!")
    r = as_alice.get(f"/posts/{post.pk}/")
    assert r.status_code == 200 and b"Bob&#x27;s post" in r.content and b"first!" in r.content
    p = Page(r.content.decode())
    parents = [f["inputs"].get("parent") for f in p.forms if f["method"] == "post"]
    assert str(first.pk) in parents
    assert page(Client(), f"/posts/{post.pk}/").unread == 0


def test_write_a_post_through_the_form(as_alice, alice):
    r = as_alice.post("/posts/new/", {"title": "  Spaced  ", "body": "text"})
    post = alice.posts.get()
    assert r.status_code == 302 and r["Location"] == f"/posts/{post.pk}/" and post.title == "Spaced"
    r = as_alice.post("/posts/new/", {"title": "", "body": ""})
    assert r.status_code == 200 and alice.posts.count() == 1


def test_notification_list_is_newest_first_and_paginated(as_alice, alice, bob):
    ns = fill(alice, bob, personal=23, site=2)
    ids = sorted(n.id for n in ns)
    first = page(as_alice, "/inform/")
    assert [i["id"] for i in first.items] == ids[::-1][:20]
    assert all(i["unread"] for i in first.items)
    second = page(as_alice, "/inform/?page=2")
    assert [i["id"] for i in second.items] == ids[::-1][20:]
    assert page(as_alice, "/inform/?page=99").items == second.items  # past the end: the last page
    assert page(as_alice, "/inform/?page=x").items == first.items


def test_notification_list_shows_only_my_stream(as_alice, alice, bob, make_user):
    send_inform(everyone=True, verb="site_update", text="before alice")  # alice joined earlier: in her stream
    carol = make_user("carol")  # joins after that update
    send_inform(to=bob, verb="follow", text="for bob", actor=alice)
    mine = send_inform(to=alice, verb="follow", text="for alice", actor=bob)
    ids = [i["id"] for i in page(as_alice, "/inform/").items]
    assert mine[0].id in ids and len(ids) == 2
    c = Client()
    c.force_login(carol)
    assert page(c, "/inform/").items == []


def test_notification_list_needs_sign_in(client):
    r = client.get("/inform/")
    assert r.status_code == 302 and r["Location"].startswith("/accounts/login/")


def test_no_js_mark_read_form_marks_one_read(as_alice, alice, bob):
    ns = fill(alice, bob)
    p = page(as_alice, "/inform/?page=1")
    forms = [f for f in p.forms if f["action"] == "/inform/read/" and "id" in f["inputs"]]
    assert len(forms) == 5
    target = forms[0]["inputs"]
    r = as_alice.post("/inform/read/", target)
    assert r.status_code == 302 and r["Location"] == "/inform/?page=1"
    p = page(as_alice, "/inform/")
    read = [i for i in p.items if not i["unread"]]
    assert [i["id"] for i in read] == [int(target["id"])]
    assert p.unread == 4
    assert {n.id for n in ns} == {i["id"] for i in p.items}


def test_no_js_mark_all_read_form(as_alice, alice, bob):
    fill(alice, bob)
    p = page(as_alice, "/inform/")
    (form,) = [f for f in p.forms if f["action"] == "/inform/read/" and "all" in f["inputs"]]
    r = as_alice.post("/inform/read/", form["inputs"])
    assert r.status_code == 302
    p = page(as_alice, "/inform/")
    assert p.unread == 0 and not [i for i in p.items if i["unread"]]


def test_no_js_mark_read_of_foreign_or_junk_ids_changes_nothing(as_alice, alice, bob):
    fill(alice, bob)
    (bobs,) = send_inform(to=bob, verb="follow", text="bob's", actor=alice)
    for ids in ([bobs.id], ["junk"], [10**12]):
        r = as_alice.post("/inform/read/", {"id": ids})
        assert r.status_code == 302
    assert Notification.objects.filter(read_at__isnull=False).count() == 0
    assert page(as_alice, "/").unread == 5
    assert as_alice.get("/inform/read/").status_code == 405


def test_signup_logs_in_and_starts_with_no_old_site_updates(client):
    send_inform(everyone=True, verb="site_update", text="old news")
    r = client.post(
        "/accounts/signup/", {"username": "dora", "password1": "a-long-pass-4321", "password2": "a-long-pass-4321"}
    )
    assert r.status_code == 302 and r["Location"] == "/"
    dora = User.objects.get(username="dora")
    assert selectors.unread_count(dora) == 0
    assert page(client, "/inform/").items == []
    send_inform(everyone=True, verb="site_update", text="new news")
    assert page(client, "/").unread == 1


def test_signup_with_bad_input_creates_nobody(client, alice):
    r = client.post("/accounts/signup/", {"username": "alice", "password1": "a-long-pass-4321", "password2": "a-long-pass-4321"})
    assert r.status_code == 200
    r = client.post("/accounts/signup/", {"username": "eve", "password1": "a-long-pass-4321", "password2": "other"})
    assert r.status_code == 200
    assert list(User.objects.values_list("username", flat=True)) == ["alice"]


def test_login_and_logout(client, alice):
    r = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert r.status_code == 302
    assert page(client, "/inform/").unread == 0
    r = client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    assert r.status_code == 200 and b"correct" in r.content
    client.post("/accounts/logout/")
    assert client.get("/inform/").status_code == 302


def test_healthz_is_200_json(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r["Content-Type"] == "application/json"
    assert r.json() == {"status": "ok", "database": "ok", "channel_layer": "ok"}


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "http://testserver.evil.example/"])
def test_no_js_form_never_redirects_off_site(as_alice, alice, bob, target):
    fill(alice, bob)
    r = as_alice.post("/inform/read/", {"all": "1", "next": target})
    assert r.status_code == 302 and r["Location"] == "/inform/"
    assert page(as_alice, "/").unread == 0


def test_healthz_is_503_json_when_the_channel_layer_does_not_answer(client, settings):
    from tests.conftest import free_port

    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    r = client.get("/healthz")
    assert r.status_code == 503 and r["Content-Type"] == "application/json"
    assert r.json()["status"] == "unavailable" and r.json()["channel_layer"] == "error"
