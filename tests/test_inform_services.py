"""inform.services: send_inform stores and pushes after commit; read state and counts
(in process, pushes captured); the socket protocol for sync/read/read_all (real
sockets over the real Redis layer)."""

import threading
from unittest.mock import ANY

import pytest
from channels.db import database_sync_to_async as db
from django.db import connection, transaction

from inform import selectors, services
from inform.models import Notification, SiteUpdateRead
from inform.selectors import latest_notification_id
from inform.services import InformError, send_inform

pytestmark = pytest.mark.django_db


def on_sockets(test):
    """Tests with real sockets are transactional: the consumers read the database from
    other threads, which see only committed rows."""
    return pytest.mark.django_db(transaction=True)(pytest.mark.asyncio(test))


class Boom(Exception):
    pass


async def users(make_user, *names):
    return [await db(make_user)(n) for n in names]


def unread(user) -> int:
    user.refresh_from_db()
    return selectors.unread_count(user)


# --- send_inform ------------------------------------------------------------------


def test_send_to_one_user_stores_a_row_and_pushes_it(capture_pushes, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    with capture_pushes() as pushes:
        (n,) = send_inform(to=alice, verb="follow", text="bob followed you", actor=bob, url="/u/bob/")
    assert pushes == [
        (f"user.{alice.pk}", {"frame": {
            "type": "inform", "id": n.id, "verb": "follow", "actor": "bob", "text": "bob followed you",
            "url": "/u/bob/", "created": n.created.isoformat(), "unread": 1, "unseen": 1,
            "version": [1, n.id],  # alice's first counters change; the newest id
        }}),
    ]
    row = Notification.objects.get(pk=n.id)
    assert (row.recipient_id, row.actor_id, row.verb, row.text, row.read_at) == (
        alice.pk, bob.pk, "follow", "bob followed you", None,
    )


def test_send_to_several_users_pushes_each_their_own(capture_pushes, make_user):
    alice, bob, carol, dave = (make_user(n) for n in ("alice", "bob", "carol", "dave"))
    with capture_pushes() as pushes:
        sent = send_inform(to=[alice, bob, carol], verb="mention", text="hello all", actor=dave)
    assert Notification.objects.filter(verb="mention").count() == 3
    assert [(g, body["frame"]["id"], body["frame"]["actor"]) for g, body in pushes] == [
        (f"user.{n.recipient_id}", n.id, "dave") for n in sent
    ]
    assert f"user.{dave.pk}" not in {g for g, _ in pushes}


def test_nothing_is_pushed_before_the_commit(capture_pushes, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    with capture_pushes() as pushes:
        with transaction.atomic():
            send_inform(to=alice, verb="follow", text="bob followed you", actor=bob)
            assert pushes == []
        assert pushes == []  # a savepoint released is not a commit
    assert [f["text"] for f in pushes.frames()] == ["bob followed you"]


@on_sockets
async def test_push_waits_for_commit(sockets, make_user):
    """End to end: inside a transaction nothing reaches a socket; the frame arrives once it commits."""
    alice, bob = await users(make_user, "alice", "bob")
    a = await sockets.open(user=alice)
    sent, release, done = threading.Event(), threading.Event(), threading.Event()

    def writer():
        try:
            with transaction.atomic():
                send_inform(to=alice, verb="follow", text="bob followed you", actor=bob)
                sent.set()
                release.wait(5)
        finally:
            connection.close()
            done.set()

    threading.Thread(target=writer).start()
    assert await db(sent.wait)(5)
    assert await a.silent(0.5), "pushed before the transaction committed"
    release.set()
    frame = await a.recv()
    assert frame["type"] == "inform" and frame["text"] == "bob followed you"
    assert await db(done.wait)(5)


def test_rollback_is_never_announced(capture_pushes, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    with capture_pushes() as pushes:
        with pytest.raises(Boom):
            with transaction.atomic():
                send_inform(to=alice, verb="follow", text="never", actor=bob)
                send_inform(everyone=True, verb="site_update", text="never either")
                raise Boom()
    assert Notification.objects.count() == 0
    assert pushes == []


def test_rollback_of_an_inner_savepoint_is_not_announced(capture_pushes, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    with capture_pushes() as pushes:
        with transaction.atomic():
            try:
                with transaction.atomic():
                    send_inform(to=alice, verb="follow", text="dropped", actor=bob)
                    raise Boom()
            except Boom:
                pass
            send_inform(to=alice, verb="follow", text="kept", actor=bob)
    assert [f["text"] for f in pushes.frames()] == ["kept"]
    assert list(Notification.objects.values_list("text", flat=True)) == ["kept"]


def committed_texts() -> list[str]:
    """The notification texts another connection sees: only what has committed."""
    from django.db import connections

    seen = []

    def read():
        try:
            seen.extend(Notification.objects.order_by("id").values_list("text", flat=True))
        finally:
            connections.close_all()

    reader = threading.Thread(target=read)
    reader.start()
    reader.join(10)
    return seen


@pytest.mark.django_db(transaction=True)
def test_inside_a_callers_transaction_send_inform_commits_nothing_itself(make_user):
    """The caller's transaction decides: nothing is visible before it commits, and its
    rollback leaves nothing."""
    alice, bob = make_user("alice"), make_user("bob")
    with pytest.raises(Boom):
        with transaction.atomic():
            send_inform(to=alice, verb="reply", text="not yet", actor=bob, topic="post:1", summary="replied")
            assert committed_texts() == []
            raise Boom()
    assert Notification.objects.count() == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite writers take turns anyway")
@pytest.mark.django_db(transaction=True)
def test_in_its_own_transaction_send_inform_does_not_hold_the_turn_after_storing(make_user, monkeypatch):
    """Outside a transaction (the reply signal, the send_inform command) send_inform commits
    in the round trip that stores, so the stream's turn (realtime.ordering) is never held
    while its process does something else: paused right after storing, its row has
    already committed, and another sender goes ahead."""
    from django.db import connections

    from inform import push

    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    stored, release, errors = threading.Event(), threading.Event(), []
    notify_informs = push.notify_informs

    def pause_after_storing(created, counters=None):
        if created[0].recipient_id == alice.pk:
            stored.set()
            release.wait(20)
        notify_informs(created, counters)

    monkeypatch.setattr(push, "notify_informs", pause_after_storing)

    def send(to, text):
        try:
            send_inform(to=to, verb="reply", text=text, actor=bob, topic="post:1", summary="replied")
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    first = threading.Thread(target=send, args=(alice, "first"))
    first.start()
    try:
        assert stored.wait(10)
        assert committed_texts() == ["first"]
        second = threading.Thread(target=send, args=(carol, "second"))
        second.start()
        second.join(10)
        assert not second.is_alive(), "the second sender waited for the first one's turn"
    finally:
        release.set()
        first.join(10)
    assert errors == []
    assert committed_texts() == ["first", "second"]


def test_everyone_stores_one_row_and_pushes_one_message(capture_pushes, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    with capture_pushes() as pushes:
        (n,) = send_inform(everyone=True, verb="site_update", text="maintenance at 5", url="/about/")
    assert Notification.objects.count() == 1 and n.recipient_id is None
    ((group, body),) = pushes
    assert group == "site"
    assert body["frame"] == {
        "type": "inform", "id": n.id, "verb": "site_update", "actor": None, "text": "maintenance at 5",
        "url": "/about/", "created": n.created.isoformat(),
    }
    assert body["anonymous_frame"] == {
        "type": "feed", "key": f"site_update:{n.id}", "event": "site_update", "actor": None,
        "text": "maintenance at 5", "url": "/about/",
        "created": n.created.isoformat(),
    }
    # it is in every user's stream and unread count
    assert unread(alice) == 1 and unread(bob) == 1


@on_sockets
async def test_everyone_reaches_every_socket(sockets, make_user):
    alice, bob = await users(make_user, "alice", "bob")
    a1, a2, b = [await sockets.open(user=u) for u in (alice, alice, bob)]
    anon = await sockets.open()
    (n,) = await db(send_inform)(everyone=True, verb="site_update", text="maintenance at 5", url="/about/")
    for s in (a1, a2, b):
        f = await s.recv()
        assert f["type"] == "inform" and f["id"] == n.id and f["text"] == "maintenance at 5"
    assert (await anon.recv())["type"] == "feed"


def test_users_who_sign_up_later_do_not_see_older_site_updates(make_user):
    alice = make_user("alice")
    (old,) = send_inform(everyone=True, verb="site_update", text="before carol")
    carol = make_user("carol")
    (new,) = send_inform(everyone=True, verb="site_update", text="after carol")
    assert [n.id for n in selectors.notifications_after(carol, 0, 50)] == [new.id]
    assert [n.id for n in selectors.notifications_after(alice, 0, 50)] == [old.id, new.id]
    assert unread(carol) == 1 and unread(alice) == 2
    with pytest.raises(InformError):
        services.notifications_mark_read(carol, [old.id])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"verb": "poke", "text": "x", "everyone": True},
        {"verb": "follow", "text": "x"},  # neither to nor everyone
        {"verb": "follow", "text": "   ", "everyone": True},
    ],
)
def test_bad_arguments_raise_and_store_nothing(capture_pushes, kwargs):
    with capture_pushes() as pushes, pytest.raises(InformError):
        send_inform(**kwargs)
    assert Notification.objects.count() == 0 and pushes == []


def test_both_to_and_everyone_raise(make_user):
    alice = make_user("alice")
    with pytest.raises(InformError):
        send_inform(to=alice, everyone=True, verb="follow", text="x")
    assert Notification.objects.count() == 0


def test_actor_is_not_notified_of_their_own_action(capture_pushes, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    with capture_pushes() as pushes:
        sent = send_inform(to=[alice, bob], verb="mention", text="me and bob", actor=alice)
    assert [n.recipient_id for n in sent] == [bob.pk]
    assert Notification.objects.filter(recipient=alice).count() == 0
    assert [g for g, _ in pushes] == [f"user.{bob.pk}"]


@on_sockets
async def test_async_helper_pushes_too(sockets, make_user):
    alice, bob = await users(make_user, "alice", "bob")
    a = await sockets.open(user=alice)
    (n,) = await services.asend_inform(to=alice, verb="reply", text="hi", actor=bob)
    assert (await a.recv())["id"] == n.id


# --- read state and counts --------------------------------------------------------


def _seed(alice, bob):
    personal = [send_inform(to=alice, verb="follow", text=f"p{i}", actor=bob)[0] for i in range(3)]
    site = [send_inform(everyone=True, verb="site_update", text=f"s{i}")[0] for i in range(2)]
    send_inform(to=bob, verb="follow", text="bob's own", actor=alice)
    return personal, site


def test_mark_read_ids_personal_and_site_updates(capture_pushes, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    personal, site = _seed(alice, bob)
    assert unread(alice) == 5 and unread(bob) == 3
    with capture_pushes() as pushes:
        left = services.notifications_mark_read(alice, [personal[0].id, site[1].id])
    assert left == 3 and unread(alice) == 3
    # every tab of alice learns the count; nobody else hears of it
    assert pushes == [(f"user.{alice.pk}", {"frame": {"type": "unread", "unread": 3, "unseen": 3, "version": ANY}})]
    # bob's site updates are untouched by alice's reads
    assert unread(bob) == 3
    assert SiteUpdateRead.objects.filter(user=alice).count() == 1
    # reading again is harmless
    assert services.notifications_mark_read(alice, [personal[0].id, site[1].id]) == 3


def test_mark_all_read_covers_personal_and_site_updates(capture_pushes, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    _seed(alice, bob)
    services.notifications_mark_read(alice, [])  # nothing to do is fine
    with capture_pushes() as pushes:
        assert services.notifications_mark_all_read(alice) == 0
    assert pushes.frames(f"user.{alice.pk}") == [{"type": "unread", "unread": 0, "unseen": 0, "version": ANY}] and len(pushes) == 1
    assert unread(alice) == 0 and unread(bob) == 3
    # newer ones count again
    send_inform(everyone=True, verb="site_update", text="later")
    send_inform(to=alice, verb="follow", text="later", actor=bob)
    assert unread(alice) == 2


def test_mark_read_of_someone_elses_ids_changes_nothing(capture_pushes, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    personal, _ = _seed(alice, bob)
    bobs = Notification.objects.get(recipient=bob).id
    with capture_pushes() as pushes, pytest.raises(InformError):
        services.notifications_mark_read(alice, [personal[0].id, bobs])
    assert pushes == []
    assert unread(alice) == 5 and unread(bob) == 3
    assert Notification.objects.filter(read_at__isnull=False).count() == 0


def test_read_with_a_stale_user_object_counts_right(capture_pushes, make_user):
    """Two tabs: one marks everything read, the other (holding an older user row) then
    reads one new notification; both must be told 0, not a count that resurrects the
    site updates the first tab read."""
    alice, bob = make_user("alice"), make_user("bob")
    _seed(alice, bob)
    stale = type(alice).objects.get(pk=alice.pk)  # loaded before read_all
    assert services.notifications_mark_all_read(alice) == 0
    (n,) = send_inform(to=alice, verb="follow", text="new", actor=bob)
    with capture_pushes() as pushes:
        assert services.notifications_mark_read(stale, [n.id]) == 0
    assert pushes.frames() == [{"type": "unread", "unread": 0, "unseen": 0, "version": ANY}]


@on_sockets
async def test_a_tab_opened_before_another_tab_read_all_reports_the_right_count(sockets, make_user):
    """Tab 1 connects, tab 2 marks all read, a new notification arrives, tab 1 reads it:
    every tab must show 0 (tab 1's socket holds the user row from before read_all)."""
    alice, bob = await users(make_user, "alice", "bob")
    await db(_seed)(alice, bob)
    t1, t2 = await sockets.open(user=alice), await sockets.open(user=alice)
    await t2.send({"type": "read_all"})
    assert await t1.recv() == {"type": "unread", "unread": 0, "unseen": 0, "version": ANY}
    assert await t2.recv() == {"type": "unread", "unread": 0, "unseen": 0, "version": ANY}
    (n,) = await db(send_inform)(to=alice, verb="follow", text="new", actor=bob)
    assert (await t1.recv())["unread"] == 1 and (await t2.recv())["unread"] == 1
    await t1.send({"type": "read", "ids": [n.id]})
    assert await t1.recv() == {"type": "unread", "unread": 0, "unseen": 0, "version": ANY}
    assert await t2.recv() == {"type": "unread", "unread": 0, "unseen": 0, "version": ANY}


# --- the socket protocol ------------------------------------------------------------


@on_sockets
async def test_unread_frames_reach_every_socket_of_the_user(sockets, make_user):
    alice, bob = await users(make_user, "alice", "bob")
    personal, site = await db(_seed)(alice, bob)
    t1, t2 = await sockets.open(user=alice), await sockets.open(user=alice)
    b = await sockets.open(user=bob)
    await t1.send({"type": "read", "ids": [personal[0].id, site[0].id]})
    assert await t1.recv_until("unread") == {"type": "unread", "unread": 3, "unseen": 3, "version": ANY}
    assert await t2.recv() == {"type": "unread", "unread": 3, "unseen": 3, "version": ANY}
    await t2.send({"type": "read_all"})
    assert await t1.recv() == {"type": "unread", "unread": 0, "unseen": 0, "version": ANY}
    assert await t2.recv_until("unread") == {"type": "unread", "unread": 0, "unseen": 0, "version": ANY}
    assert await b.silent()
    assert await db(unread)(alice) == 0 and await db(unread)(bob) == 3


@on_sockets
async def test_socket_read_of_someone_elses_ids_is_an_error_and_changes_nothing(sockets, make_user):
    alice, bob = await users(make_user, "alice", "bob")
    personal, _ = await db(_seed)(alice, bob)
    bobs = await db(lambda: Notification.objects.get(recipient=bob).id)()
    a = await sockets.open(user=alice)
    b = await sockets.open(user=bob)
    await a.send({"type": "read", "ids": [personal[0].id, bobs]})
    frame = await a.recv()
    assert frame["type"] == "error" and str(bobs) in frame["detail"]
    assert await a.silent() and await b.silent()
    assert await db(unread)(alice) == 5 and await db(unread)(bob) == 3
    await a.send({"type": "read", "ids": [10**9]})
    assert (await a.recv())["type"] == "error"


@on_sockets
async def test_sync_returns_everything_after_oldest_first_then_unread(sockets, make_user):
    alice, bob = await users(make_user, "alice", "bob")
    personal, site = await db(_seed)(alice, bob)
    a = await sockets.open(user=alice)
    await a.send({"type": "sync", "after": personal[0].id})
    got = [await a.recv() for _ in range(4)]
    assert [f["type"] for f in got] == ["inform"] * 4
    assert [f["id"] for f in got] == [personal[1].id, personal[2].id, site[0].id, site[1].id]
    assert await a.recv() == {"type": "unread", "unread": 5, "unseen": 5, "version": ANY}
    assert await a.recv() == {"type": "synced", "cursor": await db(latest_notification_id)()}
    assert await a.silent()
    await a.send({"type": "sync", "after": 0})
    ids = [(await a.recv())["id"] for _ in range(5)]
    assert ids == sorted(ids) and len(ids) == 5
    assert (await a.recv())["type"] == "unread"
    assert (await a.recv())["type"] == "synced"


@on_sockets
async def test_sync_after_the_last_id_is_just_the_count(sockets, make_user):
    alice, bob = await users(make_user, "alice", "bob")
    _, site = await db(_seed)(alice, bob)
    a = await sockets.open(user=alice)
    await a.send({"type": "sync", "after": site[-1].id})
    assert await a.recv() == {"type": "unread", "unread": 5, "unseen": 5, "version": ANY}


@on_sockets
async def test_sync_pages_through_more_than_one_batch(sockets, make_user):
    from inform.consumers import SYNC_BATCH

    alice, bob = await users(make_user, "alice", "bob")
    await db(Notification.objects.bulk_create)(
        [Notification(recipient=alice, actor=bob, verb="follow", text=f"n{i}") for i in range(SYNC_BATCH + 5)]
    )
    a = await sockets.open(user=alice)
    await a.send({"type": "sync", "after": 0})
    ids = [(await a.recv())["id"] for _ in range(SYNC_BATCH + 5)]
    assert ids == sorted(set(ids))
    assert await a.recv() == {"type": "unread", "unread": SYNC_BATCH + 5, "unseen": SYNC_BATCH + 5, "version": ANY}


@on_sockets
@pytest.mark.parametrize("after", [-1, "5", None, 1.5, True, 2**63])
async def test_sync_with_bad_after_is_a_bad_request(sockets, make_user, after):
    (alice,) = await users(make_user, "alice")
    a = await sockets.open(user=alice)
    frame = {"type": "sync"} if after is None else {"type": "sync", "after": after}
    await a.send(frame)
    error = await a.recv()
    assert error["type"] == "error" and error["code"] == "bad_request" and error["detail"]
    assert await a.silent()
    # the socket still works
    await a.send({"type": "sync", "after": 0})
    assert await a.recv() == {"type": "unread", "unread": 0, "unseen": 0, "version": ANY}


def test_every_change_of_the_counters_comes_with_a_newer_version(make_user, django_user_model):
    """The counters' version (selectors.Counters) grows, compared as pairs, with every
    change of a person's counters, so a client can tell the newer of two readings."""
    alice, bob = make_user("alice"), make_user("bob")
    versions = [selectors.counters(alice).version]

    def newer() -> None:
        version = selectors.counters(alice).version
        assert version > versions[-1], versions + [version]
        versions.append(version)

    (n,) = send_inform(to=alice, verb="follow", text="bob followed you", actor=bob)
    newer()
    (site,) = send_inform(everyone=True, verb="site_update", text="news")
    newer()
    assert versions[-1][1] == site.id  # counted in the counters of this version
    services.notifications_mark_seen(alice, site.id)
    newer()
    services.notifications_mark_read(alice, [n.id])
    newer()
    services.notifications_mark_all_read(alice)
    newer()
    services.preferences_save(alice, {"site_update": "off"})
    newer()
    send_inform(to=bob, verb="follow", text="alice followed you", actor=alice)
    assert selectors.counters(alice).version[0] == versions[-1][0]  # not alice's change

    # Someone without a state row (bulk-created) gets one, with a version of their own.
    (carol,) = django_user_model.objects.bulk_create([django_user_model(username="carol")])
    before = selectors.counters(carol).version
    send_inform(to=carol, verb="follow", text="bob followed you", actor=bob)
    assert selectors.counters(carol).version > before and selectors.counters(carol).version[0] >= 1


@pytest.mark.slow  # starts Django on SQLite in a process of its own
def test_a_send_to_more_people_than_one_sqlite_statement_takes_stores_every_row(tmp_path):
    """SQLite caps the parameters of one statement (999 in older builds and Django's
    assumption; set so here): the insert goes in batches, each row gets its own id."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = """
import sqlite3
from django.contrib.auth import get_user_model
from django.db import connection
from inform.models import Notification
from inform.services import send_inform
User = get_user_model()
User.objects.bulk_create([User(username=f"p{i}") for i in range(250)])
connection.ensure_connection()
connection.connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
sent = send_inform(to=User.objects.all(), verb="mention", text="hello")
stored = dict(Notification.objects.values_list("id", "recipient_id"))
assert len(sent) == 250 and stored == {n.id: n.recipient_id for n in sent}, (len(sent), len(stored))
print("ok", len(stored))
"""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "DJANGO_DEBUG": "1", "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    env.pop("REDIS_URL", None)
    for args in (["migrate", "-v0"], ["shell", "-c", script]):
        done = subprocess.run([sys.executable, str(root / "manage.py"), *args], env=env, cwd=root,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok 250"), done.stdout
