"""Issue 13.2: seen vs read. The badge counts unseen (unread and newer than the last time
the person opened the menu or the list), the list marks unread; every change pushes the
full counter state."""

import json
from unittest.mock import ANY

import pytest
from channels.db import database_sync_to_async as db
from django.test import Client

from inform import selectors, services
from inform.selectors import Counters
from inform.services import send_inform

pytestmark = pytest.mark.django_db


def counters_frames(pushes, user):
    return [f for f in pushes.frames(f"user.{user.pk}") if f["type"] == "unread"]


def test_new_notifications_are_unseen_and_unread(capture_pushes, alice, bob):
    with capture_pushes() as pushes:
        a = send_inform(to=alice, verb="follow", text="bob followed you", actor=bob)[0]
    send_inform(everyone=True, verb="site_update", text="We moved")
    assert pushes.frames(f"user.{alice.pk}")[0]["id"] == a.id
    assert (pushes.frames(f"user.{alice.pk}")[0]["unread"], pushes.frames(f"user.{alice.pk}")[0]["unseen"]) == (1, 1)
    assert selectors.counters(alice) == Counters(unread=2, unseen=2, version=ANY)


def test_seeing_clears_unseen_keeps_unread_and_tells_every_tab(capture_pushes, alice, bob):
    first = send_inform(to=alice, verb="follow", text="one", actor=bob)[0]
    site = send_inform(everyone=True, verb="site_update", text="two")[0]
    with capture_pushes() as pushes:
        services.notifications_mark_seen(alice, site.id)
    assert counters_frames(pushes, alice) == [{"type": "unread", "unread": 2, "unseen": 0, "version": ANY}]
    later = send_inform(to=alice, verb="mention", text="three", actor=bob)[0]
    assert selectors.counters(alice) == (3, 1, ANY)
    # Reading an unseen one lowers both; reading a seen one only unread.
    services.notifications_mark_read(alice, [later.id])
    assert selectors.counters(alice) == (2, 0, ANY)
    services.notifications_mark_read(alice, [first.id])
    assert selectors.counters(alice) == (1, 0, ANY)


def test_seen_never_moves_back_and_an_unchanged_seen_pushes_nothing(capture_pushes, alice, bob):
    a, b = (send_inform(to=alice, verb="follow", text=t, actor=bob)[0] for t in ("a", "b"))
    services.notifications_mark_seen(alice, b.id)
    with capture_pushes() as pushes:
        services.notifications_mark_seen(alice, a.id)  # an older tab opening its menu
        services.notifications_mark_seen(alice, b.id)
    assert pushes == []
    assert selectors.counters(alice) == (2, 0, ANY)


def test_opening_the_list_sees_everything_on_it(capture_pushes, as_alice, alice, bob):
    for t in ("a", "b", "c"):
        send_inform(to=alice, verb="follow", text=t, actor=bob)
    html = as_alice.get("/").content.decode()
    assert 'data-unread="3"' in html and ">3</span>" in html and "<title>(3) " in html
    with capture_pushes() as pushes:
        html = as_alice.get("/inform/").content.decode()
    assert counters_frames(pushes, alice) == [{"type": "unread", "unread": 3, "unseen": 0, "version": ANY}]
    assert 'data-unread="3">3</span>' in html and 'class="badge-new" hidden' in html
    assert html.count('class="inform-item unread"') == 3
    assert "<title>Notifications" in html


def test_the_menu_gives_a_cursor_and_seen_marks_up_to_it(alice, bob):
    c = Client(enforce_csrf_checks=True)
    c.force_login(alice)
    c.get("/")
    token = c.cookies["csrftoken"].value
    n = send_inform(to=alice, verb="follow", text="bob followed you", actor=bob)[0]
    menu = c.get("/inform/api/menu/").json()
    assert (menu["cursor"], menu["unread"], menu["unseen"]) == (n.id, 1, 1)
    assert menu["items"][0]["stop"] == f"/inform/{n.id}/stop/"

    def seen(body):
        return c.post("/inform/api/seen/", json.dumps(body), content_type="application/json", HTTP_X_CSRFTOKEN=token)

    # A cursor from the future is capped at the newest id: later ones stay unseen.
    r = seen({"upto": n.id + 1000})
    assert r.status_code == 200 and r.json() == {"unread": 1, "unseen": 0, "version": ANY}
    send_inform(to=alice, verb="follow", text="carol followed you")
    assert c.get("/inform/api/unread/").json() == {"unread": 2, "unseen": 1, "version": ANY}
    for bad in ({}, {"upto": "x"}, {"upto": -1}, [], None):
        assert seen(bad).status_code == 400
    assert Client().post("/inform/api/seen/", "{}", content_type="application/json").status_code in (401, 403)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_counters_reach_every_socket_and_sync_ends_with_both(sockets, make_user):
    alice, bob = await db(make_user)("alice"), await db(make_user)("bob")
    t1, t2 = await sockets.open(user=alice), await sockets.open(user=alice)
    n = (await db(send_inform)(to=alice, verb="follow", text="bob followed you", actor=bob))[0]
    for t in (t1, t2):
        f = await t.recv_until("inform")
        assert (f["id"], f["unread"], f["unseen"]) == (n.id, 1, 1)
    await db(services.notifications_mark_seen)(alice, n.id)
    for t in (t1, t2):
        assert await t.recv_until("unread") == {"type": "unread", "unread": 1, "unseen": 0, "version": ANY}
    await t1.send({"type": "sync", "after": 0})
    assert (await t1.recv_until("inform"))["id"] == n.id
    assert await t1.recv() == {"type": "unread", "unread": 1, "unseen": 0, "version": ANY}
    assert await t1.recv() == {"type": "synced", "cursor": n.id}


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_socket_of_someone_with_site_updates_off_skips_them(sockets, make_user):
    alice, bob = await db(make_user)("alice"), await db(make_user)("bob")
    await db(services.preferences_save)(alice, {"site_update": "off"})
    a, b = await sockets.open(user=alice), await sockets.open(user=bob)
    for s in (a, b):
        await s.send({"type": "sync", "after": 0})
        await s.recv_until("synced")
    site = (await db(send_inform)(everyone=True, verb="site_update", text="We moved"))[0]
    mine = (await db(send_inform)(to=alice, verb="follow", text="bob followed you", actor=bob))[0]
    assert (await b.recv_until("inform"))["id"] == site.id
    assert (await a.recv_until("inform"))["id"] == mine.id  # the site update never came first
    await a.send({"type": "sync", "after": 0})
    assert (await a.recv_until("inform"))["id"] == mine.id
    assert await a.recv() == {"type": "unread", "unread": 1, "unseen": 1, "version": ANY}
