"""Issue 10 item 8, the smaller holes: each attack as it was made."""

import json

import pytest
from channels.db import database_sync_to_async as db
from django.test import Client

from inform.services import send_inform

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    "target, expected",
    [
        ("foo", "/inform/"),  # was a 500: redirect() looked it up as a URL name
        ("inform_list", "/inform/"),
        ("https://evil.example/", "/inform/"),
        ("//evil.example/", "/inform/"),
        ("javascript:alert(1)", "/inform/"),
        ("", "/inform/"),
        ("/inform/?page=2", "/inform/?page=2"),
    ],
)
def test_mark_read_redirects_only_to_this_site(as_alice, alice, target, expected):
    (n,) = send_inform(to=alice, verb="mention", text="hi")
    r = as_alice.post("/inform/read/", {"id": n.id, "next": target})
    assert r.status_code == 302 and r["Location"] == expected


def test_deeply_nested_json_body_is_a_400(as_alice):
    for body in ("[" * 100_000, "[" * 5000 + "]" * 5000, '{"ids":' + "[" * 3000 + "]" * 3000 + "}"):
        r = as_alice.post("/inform/api/read/", body, content_type="application/json")
        assert r.status_code == 400 and r.json()["error"] == "bad_request"
    assert as_alice.post("/inform/api/read/", {"all": True}, content_type="application/json").status_code == 200


@pytest.mark.asyncio
async def test_deeply_nested_json_frame_is_an_error_frame(sockets, make_user):
    alice = await db(make_user)("alice")
    s = await sockets.open(user=alice)
    await s.send("[" * 4000 + "]" * 4000)
    assert (await s.recv())["code"] == "bad_request"
    await s.send({"type": "sync", "after": 0})
    assert await s.recv() == {"type": "unread", "unread": 0}
