"""Personal access tokens over HTTP: the settings page (no JavaScript, shown once, stored
hashed), the JSON API with `Authorization: Bearer`, scopes, CSRF only skipped for the API."""

import hashlib
import json

import pytest
from django.test import Client

from inform import selectors
from inform.services import send_inform
from tokens.models import AccessToken
from tokens.services import token_create, token_revoke

pytestmark = pytest.mark.django_db

PAGE = "/settings/tokens/"
API = "/inform/api"


def bearer(raw: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def csrf_client(user) -> tuple[Client, str]:
    c = Client(enforce_csrf_checks=True)
    c.force_login(user)
    c.get(PAGE)
    return c, c.cookies["csrftoken"].value


def post_read(c: Client, raw: str, body: dict):
    return c.post(f"{API}/read/", json.dumps(body), content_type="application/json", **bearer(raw))


# --- the settings page ----------------------------------------------------------------


def test_page_creates_a_token_shown_once_and_stores_only_its_hash(alice):
    c, csrf = csrf_client(alice)
    r = c.post(PAGE, {"name": "my bot", "scope": "read", "csrfmiddlewaretoken": csrf})
    assert r.status_code == 200 and "no-store" in r["Cache-Control"]
    page = r.content.decode()
    start = page.index('<pre id="new-token">') + len('<pre id="new-token">')
    raw = page[start:page.index("</pre>", start)]
    assert raw.startswith("mbt_") and len(raw) > 40
    token = AccessToken.objects.get(user=alice)
    assert (token.name, token.scope, token.last_used) == ("my bot", "read", None)
    assert token.digest == hashlib.sha256(raw.encode()).hexdigest()
    assert not any(raw in str(v) for v in AccessToken.objects.values().get().values())
    again = c.get(PAGE).content.decode()
    assert "my bot" in again and raw not in again and "never used" in again
    assert c.get(f"{API}/unread/", **bearer(raw)).status_code == 200
    assert "last used" in c.get(PAGE).content.decode()


def test_page_revokes_with_a_plain_form(alice):
    token, raw = token_create(user=alice, name="old", scope="write")
    c, csrf = csrf_client(alice)
    r = c.post(f"{PAGE}{token.pk}/revoke/", {"csrfmiddlewaretoken": csrf})
    assert r.status_code == 302 and r["Location"] == PAGE
    assert not AccessToken.objects.exists()
    r = Client().get(f"{API}/unread/", **bearer(raw))
    assert r.status_code == 401 and r.json()["error"] == "unauthenticated"


def test_page_refuses_bad_input_and_others_tokens(alice, bob):
    bobs, _ = token_create(user=bob, name="bob's", scope="read")
    c, csrf = csrf_client(alice)
    r = c.post(PAGE, {"name": "  ", "scope": "read", "csrfmiddlewaretoken": csrf})
    assert r.status_code == 400 and "errorlist" in r.content.decode()
    assert c.post(PAGE, {"name": "x", "scope": "admin", "csrfmiddlewaretoken": csrf}).status_code == 400
    c.post(f"{PAGE}{bobs.pk}/revoke/", {"csrfmiddlewaretoken": csrf})
    assert AccessToken.objects.filter(pk=bobs.pk).exists()
    assert not AccessToken.objects.filter(user=alice).exists()


def test_page_needs_a_session_and_csrf_never_a_token(alice):
    _, raw = token_create(user=alice, name="w", scope="write")
    anonymous = Client(enforce_csrf_checks=True)
    r = anonymous.post(PAGE, {"name": "minted by a token", "scope": "write"}, **bearer(raw))
    assert r.status_code == 403  # CSRF: a token does not lift it outside the API
    r = Client().post(PAGE, {"name": "minted by a token", "scope": "write"}, **bearer(raw))
    assert r.status_code == 302 and r["Location"].startswith("/accounts/login/")
    signed_in = Client(enforce_csrf_checks=True)
    signed_in.force_login(alice)
    assert signed_in.post(PAGE, {"name": "no csrf", "scope": "write"}, **bearer(raw)).status_code == 403
    assert list(AccessToken.objects.values_list("name", flat=True)) == ["w"]


def test_forms_ignore_tokens(alice, bob):
    send_inform(to=alice, verb="follow", actor=bob, text="hi")
    _, raw = token_create(user=alice, name="w", scope="write")
    r = Client().post("/inform/read/", {"all": "1"}, **bearer(raw))
    assert r.status_code == 302 and r["Location"].startswith("/accounts/login/")
    assert selectors.unread_count(alice) == 1


# --- the JSON API ----------------------------------------------------------------------


def test_read_only_token_reads_the_api(alice, bob):
    n = send_inform(to=alice, verb="follow", actor=bob, text="bob followed you")[0]
    send_inform(to=bob, verb="follow", actor=alice, text="not alice's")
    _, raw = token_create(user=alice, name="r", scope="read")
    c = Client()
    got = c.get(f"{API}/notifications/?after=0", **bearer(raw)).json()["notifications"]
    assert [x["id"] for x in got] == [n.id]
    assert c.get(f"{API}/unread/", **bearer(raw)).json()["unread"] == 1
    assert c.get(f"{API}/menu/", **bearer(raw)).status_code == 200


def test_read_only_token_is_refused_on_post_read(alice, bob):
    n = send_inform(to=alice, verb="follow", actor=bob, text="hi")[0]
    _, raw = token_create(user=alice, name="r", scope="read")
    for body in ({"ids": [n.id]}, {"all": True}):
        r = post_read(Client(enforce_csrf_checks=True), raw, body)
        assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert selectors.unread_count(alice) == 1


def test_read_write_token_marks_read_without_csrf(alice, bob):
    ns = [send_inform(to=alice, verb="follow", actor=bob, text=f"n{i}")[0] for i in range(2)]
    _, raw = token_create(user=alice, name="w", scope="write")
    c = Client(enforce_csrf_checks=True)
    r = post_read(c, raw, {"ids": [ns[0].id]})
    assert r.status_code == 200 and r.json()["unread"] == 1
    assert post_read(c, raw, {"all": True}).json()["unread"] == 0


def test_session_api_calls_keep_their_csrf_check(alice):
    c = Client(enforce_csrf_checks=True)
    c.force_login(alice)
    r = c.post(f"{API}/read/", json.dumps({"all": True}), content_type="application/json")
    assert r.status_code == 403 and r.json()["error"] == "csrf_failed"


@pytest.mark.parametrize("case", ["wrong_secret", "made_up", "revoked", "not_bearer_token", "inactive_user"])
def test_bad_tokens_are_401_json(alice, case):
    token, raw = token_create(user=alice, name="t", scope="write")
    presented = {
        "wrong_secret": raw[:-4] + ("AAAA" if not raw.endswith("AAAA") else "BBBB"),
        "made_up": "mbt_0123456789ab_" + "x" * 43,
        "revoked": raw,
        "not_bearer_token": "hello",
        "inactive_user": raw,
    }[case]
    if case == "revoked":
        token_revoke(user=alice, token_id=token.pk)
    if case == "inactive_user":
        alice.is_active = False
        alice.save()
    r = Client().get(f"{API}/unread/", **bearer(presented))
    assert r.status_code == 401 and r.json()["error"] == "unauthenticated"
    assert r["WWW-Authenticate"].startswith("Bearer")


def test_a_token_speaks_for_its_user_whatever_the_session(alice, bob):
    send_inform(to=alice, verb="follow", actor=bob, text="for alice")
    _, raw = token_create(user=bob, name="b", scope="read")
    c = Client()
    c.force_login(alice)
    assert c.get(f"{API}/unread/", **bearer(raw)).json()["unread"] == 0  # bob's
    assert c.get(f"{API}/unread/").json()["unread"] == 1  # alice's session


def test_last_used_is_recorded(alice):
    token, raw = token_create(user=alice, name="t", scope="read")
    Client().get(f"{API}/unread/", **bearer(raw))
    token.refresh_from_db()
    assert token.last_used is not None


def test_tokens_per_user_are_capped(alice):
    from tokens.services import MAX_PER_USER, TokenError

    for i in range(MAX_PER_USER):
        token_create(user=alice, name=f"t{i}", scope="read")
    with pytest.raises(TokenError):
        token_create(user=alice, name="one more", scope="read")


def test_every_json_api_view_takes_tokens():
    from django.urls import get_resolver

    from inform import urls

    api = [p for p in urls.urlpatterns if str(p.pattern).startswith("api/")]
    assert api and all(getattr(p.callback, "accepts_tokens", False) for p in api)
    assert not getattr(get_resolver().resolve("/inform/read/").func, "accepts_tokens", False)


def test_seen_takes_a_read_write_token_only(alice, bob):
    n = send_inform(to=alice, verb="follow", actor=bob, text="hi")[0]
    _, read_only = token_create(user=alice, name="r", scope="read")
    _, read_write = token_create(user=alice, name="w", scope="write")
    body = json.dumps({"upto": n.id})
    c = Client(enforce_csrf_checks=True)
    r = c.post(f"{API}/seen/", body, content_type="application/json", **bearer(read_only))
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    r = c.post(f"{API}/seen/", body, content_type="application/json", **bearer(read_write))
    assert r.status_code == 200 and r.json()["unseen"] == 0 and r.json()["unread"] == 1
