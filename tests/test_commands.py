"""manage.py send_inform and seed_demo, through call_command and (for exit codes) a
real manage.py process."""

import os
import subprocess
import sys
from io import StringIO

import pytest
from channels.db import database_sync_to_async as db
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from inform import selectors
from inform.models import Notification
from mblog.models import Follow, Post, Reply, User

from .conftest import ROOT, live_database_url

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def manage(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": live_database_url()}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


# --- send_inform ----------------------------------------------------------------------


def test_send_to_several_users(make_user):
    make_user("alice"), make_user("bob")
    carol = make_user("carol")
    out = run("send_inform", "--to", "alice", "--to", "bob", "--to", "alice", "--verb", "mention", "--text", "hi", "--url", "/x/")
    rows = list(Notification.objects.order_by("id").values_list("recipient__username", "verb", "text", "url"))
    assert rows == [("alice", "mention", "hi", "/x/"), ("bob", "mention", "hi", "/x/")]
    assert "sent 2 notification(s)" in out
    assert selectors.unread_count(carol) == 0


@pytest.mark.django_db(transaction=True)  # sockets read from other threads: rows must be committed
@pytest.mark.asyncio
async def test_send_pushes_to_open_sockets(sockets, make_user):
    alice = await db(make_user)("alice")
    a = await sockets.open(user=alice)
    await db(run)("send_inform", "--to", "alice", "--verb", "follow", "--text", "from the shell")
    frame = await a.recv()
    assert frame["type"] == "inform" and frame["text"] == "from the shell" and frame["unread"] == 1


def test_unknown_user_is_an_error_and_sends_nothing(make_user):
    make_user("alice")
    with pytest.raises(CommandError, match="unknown user.*(ghost|nobody).*(ghost|nobody)"):
        run("send_inform", "--to", "alice", "--to", "ghost", "--to", "nobody", "--verb", "follow", "--text", "x")
    assert Notification.objects.count() == 0


@pytest.mark.parametrize("verb", ["poke", "", "FOLLOW"])
def test_unknown_verb_is_an_error(make_user, verb):
    make_user("alice")
    with pytest.raises(CommandError, match="verb"):
        run("send_inform", "--to", "alice", "--verb", verb, "--text", "x")
    with pytest.raises(CommandError, match="verb"):
        run("send_inform", "--all", "--verb", verb, "--text", "x")
    assert Notification.objects.count() == 0


def test_to_and_all_are_exclusive_and_one_is_required(make_user):
    make_user("alice")
    with pytest.raises(CommandError):
        run("send_inform", "--to", "alice", "--all", "--verb", "follow", "--text", "x")
    with pytest.raises(CommandError):
        run("send_inform", "--verb", "follow", "--text", "x")
    with pytest.raises(CommandError):
        run("send_inform", "--all", "--verb", "site_update", "--text", "   ")
    assert Notification.objects.count() == 0


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)  # a manage.py process reads the rows
def test_exit_codes_and_messages_of_a_real_process(make_user):
    make_user("alice")
    ok = manage("send_inform", "--to", "alice", "--verb", "follow", "--text", "hello")
    assert ok.returncode == 0, ok.stderr
    bad = manage("send_inform", "--to", "ghost", "--verb", "follow", "--text", "hello")
    assert bad.returncode != 0 and "unknown user(s): ghost" in bad.stderr and "Traceback" not in bad.stderr
    bad = manage("send_inform", "--to", "alice", "--verb", "poke", "--text", "hello")
    assert bad.returncode != 0 and "unknown verb" in bad.stderr and "Traceback" not in bad.stderr
    assert Notification.objects.count() == 1


def test_all_stores_one_row_in_everyones_stream(make_user):
    users = [make_user(n) for n in ("alice", "bob", "carol")]
    out = run("send_inform", "--all", "--verb", "site_update", "--text", "maintenance", "--url", "/status/")
    (n,) = Notification.objects.all()
    assert n.recipient_id is None and f"site update {n.id}" in out
    for u in users:
        assert selectors.unread_count(u) == 1
        assert [x.id for x in selectors.notifications_after(u, 0, 10)] == [n.id]


def queries_of_send_all(text: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        run("send_inform", "--all", "--verb", "site_update", "--text", text)
    return len(ctx.captured_queries)


@pytest.mark.django_db(transaction=True)  # sockets read from other threads: rows must be committed
@pytest.mark.asyncio
async def test_all_with_10000_users_is_one_row_at_the_cost_of_one_user_and_reaches_sockets(sockets, make_user):
    alice = await db(make_user)("alice")
    a = await sockets.open(user=alice)
    anon = await sockets.open()
    few = await db(queries_of_send_all)("hello 1")
    first = (await a.recv())["id"]
    assert (await anon.recv())["event"] == "site_update"

    def many():
        User.objects.bulk_create(
            [User(username=f"user{i:05d}", password="!") for i in range(10_000)],  # no state rows: every update
            batch_size=2000,
        )

    await db(many)()
    assert await db(queries_of_send_all)("hello 10k") == few  # no work per user
    assert await db(Notification.objects.count)() == 2
    n = await db(Notification.objects.latest)("id")
    assert (await a.recv())["id"] == n.id
    assert (await anon.recv())["event"] == "site_update"

    def counts():
        some = User.objects.get(username="user09999")
        return selectors.unread_count(some), [x.id for x in selectors.notifications_after(some, 0, 5)]

    assert await db(counts)() == (2, [first, n.id])


# --- seed_demo --------------------------------------------------------------------------


def counts():
    return (
        User.objects.count(),
        Post.objects.count(),
        Reply.objects.count(),
        Follow.objects.count(),
        Notification.objects.count(),
    )


def test_seed_demo_is_idempotent_and_demo_users_can_log_in():
    out = run("seed_demo")
    assert "alice, bob, carol" in out
    first = counts()
    users, posts, replies, follows, notes = first
    assert (users, posts, replies, follows) == (4, 3, 2, 3) and notes > 0
    run("seed_demo")
    assert counts() == first
    for name in ("alice", "bob", "carol", "admin"):
        assert authenticate(username=name, password="demo-pass-123") is not None
    staff = Client()
    assert staff.login(username="admin", password="demo-pass-123")
    assert staff.get("/admin/inform/siteupdate/").status_code == 200  # README: how to get into the admin
    c = Client()
    assert c.login(username="alice", password="demo-pass-123")
    assert c.get("/inform/").status_code == 200
    # the seeded activity informed people: bob and carol followed alice, carol replied to bob
    alice = User.objects.get(username="alice")
    verbs = set(Notification.objects.filter(recipient=alice).values_list("verb", flat=True))
    assert {"follow", "reply"} <= verbs


def test_seed_demo_keeps_a_changed_password(make_user):
    run("seed_demo")
    alice = User.objects.get(username="alice")
    alice.set_password("my-own-pass-987")
    alice.save()
    run("seed_demo")
    assert authenticate(username="alice", password="my-own-pass-987") is not None


# --- bin/manage and bin/serve, as README shows them ------------------------------------


@pytest.mark.slow  # starts Django in a process of its own
def test_bin_manage_runs_readme_commands_as_written_from_any_directory(tmp_path):
    """No venv activated, no secret key, another working directory: like a newcomer."""
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SECRET_KEY", "DJANGO_DEBUG", "VIRTUAL_ENV")}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    env["PATH"] = "/usr/bin:/bin"

    def bin_manage(*args):
        return subprocess.run([str(ROOT / "bin" / "manage"), *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)

    for args in (("migrate", "-v0"), ("seed_demo",),
                 ("send_inform", "--to", "bob", "--to", "carol", "--verb", "mention", "--text", "hello", "--url", "/posts/1/"),
                 ("send_inform", "--all", "--verb", "site_update", "--text", "Maintenance at 22:00 UTC")):
        done = bin_manage(*args)
        assert done.returncode == 0, (args, done.stderr)
    bad = bin_manage("send_inform", "--to", "ghost", "--verb", "mention", "--text", "x")
    assert bad.returncode != 0 and "unknown user(s): ghost" in bad.stderr


@pytest.mark.slow  # starts Django in a process of its own
def test_bin_serve_says_when_the_port_is_busy_and_how_to_pick_another(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "PORT": str(port), "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
        done = subprocess.run([str(ROOT / "bin" / "serve")], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120)
    assert done.returncode != 0
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr
    assert f"PORT={port + 1} bin/serve" in done.stderr
    assert "serving on" not in done.stdout
