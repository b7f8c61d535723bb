"""The JSON API under /inform/api/: what the contract promises, CSRF, anonymous callers
and bad values (always JSON, never a login page)."""

import json
from unittest.mock import ANY

import pytest
from django.test import Client

from inform import selectors
from inform.models import Notification
from inform.services import send_inform

pytestmark = pytest.mark.django_db

API = "/inform/api"
INFORM_KEYS = {"type", "id", "verb", "actor", "text", "url", "created"}


def csrf_client(user) -> tuple[Client, str]:
    """A client that enforces CSRF, signed in, with the token a page would give it."""
    c = Client(enforce_csrf_checks=True)
    c.force_login(user)
    c.get("/inform/")
    return c, c.cookies["csrftoken"].value


def post_json(c: Client, path: str, body, token: str | None = None):
    extra = {"HTTP_X_CSRFTOKEN": token} if token else {}
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return c.post(path, data, content_type="application/json", **extra)


def fill(alice, bob, personal=3, site=2):
    ns = [send_inform(to=alice, verb="follow", text=f"p{i}", actor=bob, url="/u/bob/")[0] for i in range(personal)]
    ns += [send_inform(everyone=True, verb="site_update", text=f"s{i}")[0] for i in range(site)]
    send_inform(to=bob, verb="follow", text="not alice's", actor=alice)
    return ns


# --- GET /inform/api/notifications/ -------------------------------------------------


def test_notifications_after_oldest_first(as_alice, alice, bob):
    ns = fill(alice, bob)
    r = as_alice.get(f"{API}/notifications/")
    assert r.status_code == 200 and r["Content-Type"] == "application/json"
    got = r.json()["notifications"]
    assert [n["id"] for n in got] == [n.id for n in ns]
    assert all(set(n) == INFORM_KEYS and n["type"] == "inform" for n in got)
    assert got[0]["actor"] == "bob" and got[0]["url"] == "/u/bob/" and got[-1]["actor"] is None
    r = as_alice.get(f"{API}/notifications/?after={ns[1].id}&limit=2")
    assert [n["id"] for n in r.json()["notifications"]] == [ns[2].id, ns[3].id]
    r = as_alice.get(f"{API}/notifications/?after={ns[-1].id}")
    assert r.json() == {"notifications": []}


def test_notifications_limit_default_50_max_200(as_alice, alice, bob):
    Notification.objects.bulk_create(
        [Notification(recipient=alice, actor=bob, verb="follow", text=f"n{i}") for i in range(230)]
    )
    ids = list(Notification.objects.filter(recipient=alice).order_by("id").values_list("id", flat=True))
    assert [n["id"] for n in as_alice.get(f"{API}/notifications/").json()["notifications"]] == ids[:50]
    assert [n["id"] for n in as_alice.get(f"{API}/notifications/?limit=200").json()["notifications"]] == ids[:200]
    r = as_alice.get(f"{API}/notifications/?limit=1&after={ids[228]}")
    assert [n["id"] for n in r.json()["notifications"]] == [ids[229]]


@pytest.mark.parametrize(
    "query", ["after=-1", "after=x", "after=1.5", "limit=0", "limit=-3", "limit=201", "limit=abc", "after=", "limit="]
)
def test_notifications_bad_values_are_400_json(as_alice, query):
    r = as_alice.get(f"{API}/notifications/?{query}")
    assert r.status_code == 400 and r["Content-Type"] == "application/json"
    body = r.json()
    assert body["error"] == "bad_request" and body["detail"]


def test_notifications_with_a_huge_after_is_not_a_server_error(as_alice, alice, bob):
    fill(alice, bob)
    r = as_alice.get(f"{API}/notifications/?after={10**20}")
    assert r.status_code in (200, 400) and r["Content-Type"] == "application/json"
    if r.status_code == 200:
        assert r.json() == {"notifications": []}


# --- GET /inform/api/unread/ ----------------------------------------------------------


def test_unread(as_alice, alice, bob):
    assert as_alice.get(f"{API}/unread/").json() == {"unread": 0, "unseen": 0, "version": ANY}
    fill(alice, bob)
    assert as_alice.get(f"{API}/unread/").json() == {"unread": 5, "unseen": 5, "version": ANY}
    assert as_alice.post(f"{API}/unread/").status_code == 405


# --- POST /inform/api/read/ ---------------------------------------------------------


def test_read_ids_and_all_with_csrf(alice, bob):
    ns = fill(alice, bob)
    c, token = csrf_client(alice)
    r = post_json(c, f"{API}/read/", {"ids": [ns[0].id, ns[-1].id]}, token)
    # (csrf_client opened the list: everything was seen, and stays unread until read)
    assert r.status_code == 200 and r.json() == {"unread": 3, "unseen": 0, "version": ANY}
    assert c.get(f"{API}/unread/").json() == {"unread": 3, "unseen": 0, "version": ANY}
    r = post_json(c, f"{API}/read/", {"all": True}, token)
    assert r.status_code == 200 and r.json() == {"unread": 0, "unseen": 0, "version": ANY}
    alice.refresh_from_db()
    assert selectors.unread_count(alice) == 0
    assert selectors.unread_count(bob) == 3  # bob's own and both site updates


@pytest.mark.parametrize("token", [None, "wrong-token-" + "x" * 20])
def test_read_without_a_valid_csrf_token_is_403_json_and_changes_nothing(alice, bob, token):
    ns = fill(alice, bob)
    c, _ = csrf_client(alice)
    for body in ({"ids": [ns[0].id]}, {"all": True}):
        r = post_json(c, f"{API}/read/", body, token)
        assert r.status_code == 403 and r["Content-Type"] == "application/json"
        assert r.json()["error"] == "csrf_failed"
    assert selectors.unread_count(alice) == 5


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "",
        "null",
        "[1, 2]",
        "5",
        {},
        {"ids": []},
        {"ids": "1"},
        {"ids": ["1"]},
        {"ids": [-1]},
        {"ids": [1.5]},
        {"ids": list(range(1, 502))},
        {"all": False},
        {"all": "yes"},
    ],
)
def test_read_bad_bodies_are_400_json_and_change_nothing(alice, bob, body):
    fill(alice, bob)
    c, token = csrf_client(alice)
    r = post_json(c, f"{API}/read/", body, token)
    assert r.status_code == 400 and r["Content-Type"] == "application/json"
    assert r.json()["error"] == "bad_request"
    assert selectors.unread_count(alice) == 5


def test_read_of_someone_elses_ids_is_refused_and_changes_nothing(alice, bob):
    ns = fill(alice, bob)
    bobs = Notification.objects.get(recipient=bob)
    c, token = csrf_client(alice)
    r = post_json(c, f"{API}/read/", {"ids": [ns[0].id, bobs.id]}, token)
    assert r.status_code in (400, 403, 404) and r["Content-Type"] == "application/json"
    assert str(bobs.id) in r.json()["detail"]
    assert Notification.objects.filter(read_at__isnull=False).count() == 0
    assert selectors.unread_count(alice) == 5


def test_read_is_post_only(as_alice):
    assert as_alice.get(f"{API}/read/").status_code == 405


# --- anonymous callers --------------------------------------------------------------


@pytest.mark.parametrize("path", [f"{API}/notifications/", f"{API}/unread/", f"{API}/notifications/?after=x"])
def test_anonymous_get_is_401_json_never_a_login_page(path):
    r = Client().get(path)
    assert r.status_code in (401, 403) and r["Content-Type"] == "application/json"
    assert r.json()["error"] == "unauthenticated"
    assert "Location" not in r


@pytest.mark.parametrize("csrf", [False, True])
def test_anonymous_read_is_401_or_403_json(alice, bob, csrf):
    fill(alice, bob)
    c = Client(enforce_csrf_checks=csrf)
    token = None
    if csrf:
        c.get("/accounts/login/")
        token = c.cookies["csrftoken"].value
    r = post_json(c, f"{API}/read/", {"all": True}, token)
    assert r.status_code in (401, 403) and r["Content-Type"] == "application/json"
    assert "Location" not in r
    assert selectors.unread_count(alice) == 5
    # without a token at all the CSRF check answers first, still in JSON
    r = post_json(Client(enforce_csrf_checks=True), f"{API}/read/", {"all": True})
    assert r.status_code == 403 and r.json()["error"] == "csrf_failed"


def test_csrf_failure_on_a_page_is_still_a_page(alice):
    c = Client(enforce_csrf_checks=True)
    c.force_login(alice)
    r = c.post("/inform/read/", {"all": "1"})
    assert r.status_code == 403 and r["Content-Type"].startswith("text/html")
