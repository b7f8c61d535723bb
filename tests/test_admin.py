"""The admin: notification and site-update lists with search, and the actions that
publish or push again (checked on a real socket)."""

import pytest
from channels.db import database_sync_to_async as db
from channels.db import database_sync_to_async as sync_to_async  # closes its connections
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client

from inform.models import Notification
from inform.services import send_inform

pytestmark = pytest.mark.django_db

NOTES = "/admin/inform/notification/"
UPDATES = "/admin/inform/siteupdate/"


@pytest.fixture
def people(make_user, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "root-pass-123")
    alice, bob = make_user("alice"), make_user("bob")
    return admin, alice, bob


def admin_client(admin) -> Client:
    c = Client()
    c.force_login(admin)
    return c


def fill(alice, bob):
    (p,) = send_inform(to=alice, verb="follow", text="bob followed you", actor=bob)
    (q,) = send_inform(to=bob, verb="reply", text="alice replied: zebra", actor=alice)
    (s,) = send_inform(everyone=True, verb="site_update", text="platypus week")
    return p, q, s


def listed_ids(response) -> set[int]:
    return {obj.pk for obj in response.context["cl"].result_list}


def test_changelists_load_and_search(people):
    admin, alice, bob = people
    p, q, s = fill(alice, bob)
    c = admin_client(admin)
    r = c.get(NOTES)
    assert r.status_code == 200 and listed_ids(r) == {p.id, q.id, s.id}
    assert listed_ids(c.get(NOTES, {"q": "zebra"})) == {q.id}
    assert listed_ids(c.get(NOTES, {"q": "alice"})) == {p.id, q.id}  # recipient or actor
    assert listed_ids(c.get(NOTES, {"kind": "site"})) == {s.id}
    assert listed_ids(c.get(NOTES, {"kind": "personal"})) == {p.id, q.id}
    assert listed_ids(c.get(NOTES, {"verb": "reply"})) == {q.id}
    r = c.get(UPDATES)
    assert r.status_code == 200 and listed_ids(r) == {s.id}
    assert listed_ids(c.get(UPDATES, {"q": "platypus"})) == {s.id}
    assert listed_ids(c.get(UPDATES, {"q": "zebra"})) == set()
    assert c.get(f"{NOTES}{p.id}/change/").status_code == 200
    assert c.get(f"{UPDATES}{s.id}/change/").status_code == 200
    assert c.get(f"{UPDATES}add/").status_code == 200


def test_admin_needs_staff(people):
    _, alice, _ = people
    c = Client()
    c.force_login(alice)
    r = c.get(NOTES)
    assert r.status_code == 302 and "/admin/login/" in r["Location"]


@pytest.mark.django_db(transaction=True)  # sockets read from other threads: rows must be committed
@pytest.mark.asyncio
async def test_publish_as_site_update_action_pushes(sockets, people):
    admin, alice, bob = people
    p, q, s = await db(fill)(alice, bob)
    a = await sockets.open(user=alice)
    anon = await sockets.open()
    c = await sync_to_async(admin_client)(admin)
    r = await sync_to_async(c.post)(NOTES, {"action": "publish_as_site_update", ACTION_CHECKBOX_NAME: [q.id]})
    assert r.status_code == 302
    new = await db(lambda: Notification.objects.order_by("-id").first())()
    assert new.id > s.id and new.recipient_id is None and new.text == q.text and new.actor_id == admin.pk
    frame = await a.recv()
    assert (frame["type"], frame["id"], frame["verb"], frame["actor"]) == ("inform", new.id, "site_update", "root")
    assert (await anon.recv())["event"] == "site_update"
    assert await db(Notification.objects.count)() == 4


@pytest.mark.django_db(transaction=True)  # sockets read from other threads: rows must be committed
@pytest.mark.asyncio
async def test_send_again_actions_push_the_stored_rows(sockets, people):
    admin, alice, bob = people
    p, q, s = await db(fill)(alice, bob)
    a = await sockets.open(user=alice)
    b = await sockets.open(user=bob)
    anon = await sockets.open()
    c = await sync_to_async(admin_client)(admin)
    r = await sync_to_async(c.post)(NOTES, {"action": "send_again", ACTION_CHECKBOX_NAME: [p.id, s.id]})
    assert r.status_code == 302
    got = {(await a.recv())["id"], (await a.recv())["id"]}
    assert got == {p.id, s.id}
    assert (await b.recv())["id"] == s.id  # bob gets the site update, not alice's follow
    assert (await anon.recv())["event"] == "site_update"
    assert await b.silent()
    # Again: a socket that missed it gets it; one that has it is not sent it twice.
    fresh = await sockets.open(user=alice)
    r = await sync_to_async(c.post)(UPDATES, {"action": "send_again", ACTION_CHECKBOX_NAME: [s.id]})
    assert r.status_code == 302
    assert (await fresh.recv())["id"] == s.id
    assert await a.silent() and await b.silent()
    assert await db(Notification.objects.count)() == 3  # nothing new stored


@pytest.mark.django_db(transaction=True)  # sockets read from other threads: rows must be committed
@pytest.mark.asyncio
async def test_adding_a_site_update_in_the_admin_publishes_it(sockets, people):
    admin, alice, bob = people
    a = await sockets.open(user=alice)
    anon = await sockets.open()
    c = await sync_to_async(admin_client)(admin)
    r = await sync_to_async(c.post)(f"{UPDATES}add/", {"text": "new rules", "url": "/rules/"})
    assert r.status_code == 302
    n = await db(Notification.objects.get)()
    assert (n.recipient_id, n.verb, n.text, n.url, n.actor_id) == (None, "site_update", "new rules", "/rules/", admin.pk)
    frame = await a.recv()
    assert (frame["id"], frame["text"], frame["url"]) == (n.id, "new rules", "/rules/")
    assert await anon.recv() == {
        "type": "feed", "key": f"site_update:{n.id}", "event": "site_update", "actor": "root", "text": "new rules", "url": "/rules/",
        "created": n.created.isoformat(),
    }
    # an empty update is refused by the form and publishes nothing
    r = await sync_to_async(c.post)(f"{UPDATES}add/", {"text": "", "url": ""})
    assert r.status_code == 200
    assert await db(Notification.objects.count)() == 1
    assert await a.silent()


def test_published_site_updates_cannot_be_edited(people):
    admin, alice, bob = people
    _, _, s = fill(alice, bob)
    c = admin_client(admin)
    r = c.post(f"{UPDATES}{s.id}/change/", {"text": "rewritten", "url": ""})
    assert r.status_code == 403
    s.refresh_from_db()
    assert s.text == "platypus week"
