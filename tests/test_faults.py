"""The fault matrix of issue 9: each test runs real processes (daphne, a private
redis-server, PostgreSQL), injects one fault while notifications are being pushed, and
checks what clients end with against the committed rows of the database.

Two kinds of client (tests/faults.py Tab): sockets that stay open (never reconnect; an
id sent twice on one is a defect) and clients that reconnect and resume with
`sync after=<last synced cursor>` (they drop ids they hold). Each test prints its
figure line (sent, received, lost, duplicated); the run shows them all at the end.
"""

import asyncio
import itertools
import json
import os
import signal
import subprocess
import threading
import time

import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from inform.models import InformState
from tests.conftest import Daphne, free_port, live_database_url, session_cookie_for, wait_for_http
from tests.faults import (
    PrivatePostgres,
    PrivateRedis,
    Pusher,
    RawStalledSocket,
    SupervisedDaphne,
    Tab,
    api_get,
    figure,
    manage,
    open_fds,
    rss_kib,
    stream_ids_via_api,
    tally,
    wait_until,
)

# Each test runs a burst against real servers: minutes on a loaded 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

# The shipped default: an outage shorter than this can go unnoticed by a process's hub.
PROBE_INTERVAL = 2.0
PAUSE = 1.0  # a Redis stall shorter than PROBE_INTERVAL
SETTLE = 30  # seconds a healed server has to bring every client to the committed state


@pytest.fixture
def private_redis():
    redis = PrivateRedis().start()
    yield redis
    redis.cleanup()


def server_env(redis: PrivateRedis, **extra) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": live_database_url(),
        "REDIS_URL": redis.url,
        "INFORM_HUB_PROBE_INTERVAL": "0.5",
        **{k: str(v) for k, v in extra.items()},
    }


def stream_ids(user) -> set[int]:
    from inform.selectors import stream

    return set(stream(user).values_list("id", flat=True))


def open_tabs(url: str, users, *, reconnect: bool) -> list[Tab]:
    tabs = []
    for user in users:
        tab = Tab(url, session_cookie_for(user), reconnect=reconnect, name=f"{user.username}-{reconnect}")
        tab.user = user
        tab.start()
        tabs.append(tab)
    for tab in tabs:
        assert tab.ready.wait(15), f"{tab.name} did not open"
        assert tab.failure is None, tab.failure
    return tabs


def settle(tabs: list[Tab], timeout: float = SETTLE, committed=stream_ids) -> dict[Tab, set[int]]:
    """Wait (up to timeout) until every tab holds exactly its user's committed stream;
    returns the expected sets whether or not they got there (the tally says)."""
    expected = {tab: committed(tab.user) for tab in tabs}
    try:
        wait_until(lambda: all(t.snapshot() == expected[t] for t in tabs), timeout, "every tab to hold its stream",
                   interval=0.2)
    except AssertionError:
        pass
    return expected


def check(name: str, tabs: list[Tab], expected: dict[Tab, set[int]]) -> dict:
    numbers = tally(tabs, expected)
    figure(name, **numbers, sockets=sum(t.sockets for t in tabs))
    return numbers


def stop_all(tabs: list[Tab]) -> None:
    for tab in tabs:
        tab.stopping.set()
    for tab in tabs:
        tab.join(10)


# --- 1. Redis killed and restarted mid-burst ---------------------------------------


def test_redis_killed_and_restarted_mid_burst(private_redis, make_user):
    """Issue 9, finding 1: 20 users, one socket each that stays open, and one resuming
    client each; 24 send_inform calls (3 at a time) to all 20; redis-server SIGKILLed
    after the 8th call and restarted (empty) after the 16th."""
    users = [make_user(f"u{i:02d}") for i in range(20)]
    env = server_env(private_redis, INFORM_HUB_PROBE_INTERVAL=PROBE_INTERVAL)
    server = Daphne(env, name="faults-redis-kill").start()
    tabs: list[Tab] = []
    try:
        open_ = open_tabs(server.url, users, reconnect=False)
        resuming = open_tabs(server.url, users, reconnect=True)
        tabs = open_ + resuming
        # each resuming client also drops its socket once: before, during or after the outage
        drop_at = {tab: (4, 12, 20)[i % 3] for i, tab in enumerate(resuming)}

        done = 0
        lock = threading.Condition()
        argv = [a for u in users for a in ("--to", u.username)]

        def call(i: int) -> None:
            nonlocal done
            manage(env, "send_inform", *argv, "--verb", "mention", "--text", f"burst #{i}")
            with lock:
                done += 1
                lock.notify_all()
                finished = done
            for tab, at in drop_at.items():
                if at == finished:
                    tab.drop()

        def wait_done(n: int) -> None:
            with lock:
                assert lock.wait_for(lambda: done >= n, 120), f"only {done} calls finished"

        slots = threading.Semaphore(3)
        threads = []

        def run(i):
            try:
                call(i)
            finally:
                slots.release()

        def launcher():
            for i in range(1, 25):
                slots.acquire()
                t = threading.Thread(target=run, args=(i,))
                t.start()
                threads.append(t)

        feeder = threading.Thread(target=launcher)
        t0 = time.monotonic()
        feeder.start()
        wait_done(8)
        private_redis.kill()
        t1 = time.monotonic()
        wait_done(16)
        private_redis.start()
        t2 = time.monotonic()
        wait_done(24)
        print(f"burst: 8 calls {t1 - t0:.1f}s, outage {t2 - t1:.1f}s, total {time.monotonic() - t0:.1f}s")
        feeder.join()
        for t in threads:
            t.join()

        expected = settle(tabs)
        open_numbers = check("redis-kill/open", open_, expected)
        resume_numbers = check("redis-kill/resuming", resuming, expected)
        closed = [t.close_codes for t in open_ if t.closed.is_set()]
    finally:
        stop_all(tabs)
        server.stop()
    assert all(len(e) == 24 for e in expected.values())
    assert_delivered(open_numbers, resume_numbers, closed)


def assert_delivered(open_numbers: dict, resume_numbers: dict, closed: list) -> None:
    """Open sockets: every committed id once. Resuming clients: every committed id
    (they drop what they already hold)."""
    assert not closed, f"sockets that should have stayed open were closed: {closed}"
    assert (open_numbers["lost"], open_numbers["duplicated"], open_numbers["extra"]) == (0, 0, 0), open_numbers
    assert (resume_numbers["lost"], resume_numbers["extra"]) == (0, 0), resume_numbers


def test_redis_paused_for_less_than_the_probe_interval(private_redis, make_user):
    """redis-server stopped (SIGSTOP) for 1 s, shorter than the hub's probe interval,
    while a sender pushes to 20 users: nobody misses anything, nothing is sent twice."""
    users = [make_user(f"u{i:02d}") for i in range(20)]
    env = server_env(private_redis, INFORM_HUB_PROBE_INTERVAL=PROBE_INTERVAL)
    server = Daphne(env, name="faults-redis-pause").start()
    tabs: list[Tab] = []
    pusher = None
    try:
        open_ = open_tabs(server.url, users, reconnect=False)
        resuming = open_tabs(server.url, users, reconnect=True)
        tabs = open_ + resuming
        pusher = Pusher(env, "--to", ",".join(u.username for u in users), "--count", "60", "--progress", "1",
                        "--pace", "0.02")
        wait_until(lambda: pusher.sent >= 20 or pusher.done.is_set(), 60, "20 pushes")
        private_redis.pause()
        paused_at = time.monotonic()
        time.sleep(PAUSE)  # the fault itself lasts this long
        private_redis.resume()
        paused_for = time.monotonic() - paused_at
        pusher.wait(120)
        expected = settle(tabs)
        open_numbers = check("redis-pause/open", open_, expected)
        resume_numbers = check("redis-pause/resuming", resuming, expected)
        closed = [t.close_codes for t in open_ if t.closed.is_set()]
    finally:
        if pusher:
            pusher.kill()
        stop_all(tabs)
        server.stop()
    assert paused_for < PROBE_INTERVAL
    assert all(len(e) == 60 for e in expected.values())
    assert_delivered(open_numbers, resume_numbers, closed)


# --- 2. daphne SIGKILLed mid-burst, restarted by supervisor -----------------------


def test_daphne_killed_mid_burst_and_restarted_by_supervisor(private_redis, make_user):
    """A sender pushes to 10 users; their clients' daphne is SIGKILLed a third of the way
    in and supervisord starts a new one; the clients reconnect, resume, and end with
    exactly the committed ids."""
    users = [make_user(f"u{i:02d}") for i in range(10)]
    env = server_env(private_redis)
    server = SupervisedDaphne(env, name="faults-supervised").start()
    tabs: list[Tab] = []
    pusher = None
    try:
        tabs = open_tabs(server.url, users, reconnect=True)
        pusher = Pusher(env, "--to", ",".join(u.username for u in users), "--count", "150", "--progress", "1",
                        "--pace", "0.01")
        wait_until(lambda: pusher.sent >= 50 or pusher.done.is_set(), 60, "50 pushes")
        first = server.pid()
        os.kill(first, signal.SIGKILL)
        killed_at = pusher.sent
        wait_until(lambda: server.pid() not in (0, first), 30, "supervisord to start a new daphne")
        wait_for_http(server.url + "/healthz", timeout=30)
        pusher.wait(120)
        expected = settle(tabs)
        numbers = check("daphne-kill/resuming", tabs, expected)
        reconnected = [t.sockets for t in tabs]
    finally:
        if pusher:
            pusher.kill()
        stop_all(tabs)
        server.stop()
    assert killed_at < 150, "the burst was over before the kill"
    assert all(n >= 2 for n in reconnected), reconnected
    assert all(len(e) == 150 for e in expected.values())
    assert (numbers["lost"], numbers["extra"]) == (0, 0), numbers


# --- 3. commits out of id order, the lower id's push lost --------------------------


def lock_waiters() -> int:
    """Backends of this database waiting for a lock (a second insert queued behind a first)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND wait_event_type = 'Lock'")
        return cursor.fetchone()[0]


def test_a_lower_id_committed_late_with_its_push_lost_still_arrives(private_redis, alice):
    """Issue 9, finding 2. A inserts a notification for alice and holds its transaction
    open; B inserts one, commits and pushes; then A commits, and A's push is lost (its
    process cannot reach Redis). alice's client, which synced after B, must still get A.
    (With commit-ordered ids B's insert waits for A's commit; either way the client must
    end with both.)"""
    env = server_env(private_redis)
    dead_redis = {**env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    server = Daphne(env, name="faults-commit-order").start()
    tab = None
    a = b = None
    try:
        tab = Tab(server.url, session_cookie_for(alice), reconnect=True, name="alice")
        tab.user = alice
        tab.start()
        assert tab.ready.wait(15) and tab.failure is None, tab.failure
        a = Pusher(dead_redis, "--to", "alice", "--hold")
        wait_until(lambda: any(x.startswith("inserted") for x in a.lines) or a.done.is_set(), 30, "A's insert")
        a_id = int(next(x for x in a.lines if x.startswith("inserted")).split()[1])
        b = Pusher(env, "--to", "alice", "--count", "1", "--progress", "1")
        wait_until(lambda: b.done.is_set() or lock_waiters() > 0, 30, "B to commit or to wait for A")
        b_waited = not b.done.is_set()
        if not b_waited:  # ids out of commit order: B is in, with a higher id than A's
            b.wait(30)
            wait_until(lambda: tab.snapshot(), 10, "B's push")
            answers = tab.sync_answers()
            tab.drop()  # the client resumes after B (its cursor covers B)
            wait_until(lambda: tab.sync_answers() > answers, 10, "a sync answer after B")
        a.say("commit")
        a.wait(30)
        b.wait(30)
        answers = tab.sync_answers()
        tab.drop()  # and resumes once more, now that A is committed
        wait_until(lambda: tab.sync_answers() > answers, 10, "a sync answer after A's commit")
        expected = settle([tab], timeout=10)
        numbers = check("commit-order/resuming", [tab], expected)
    finally:
        for p in (a, b):
            if p:
                p.kill()
        if tab:
            tab.stop()
        server.stop()
    assert len(expected[tab]) == 2 and a_id in expected[tab]
    print(f"B {'waited for A' if b_waited else 'committed before A'}; A's id {a_id}, the stream {sorted(expected[tab])}")
    assert (numbers["lost"], numbers["extra"]) == (0, 0), numbers


# --- 3b. counter frames of two senders crossing ------------------------------------


def release_reversed(held: list) -> None:
    from realtime import transport

    for group, body in reversed(held):
        transport._send_now([(group, body)])


@pytest.mark.parametrize("first", ["personal", "site_update"])
def test_counter_frames_of_two_senders_delivered_in_reverse_order(make_user, monkeypatch, first):
    """A notification (personal, or a site update) commits and its push is held back (a
    slow sender); then a read_all in another tab commits and pushes its counters, which
    the socket gets first; then the held push arrives. The notification's counters (or,
    for a site update, the client's "one more") are older than the read_all's: the
    socket's badge must end at the read_all's, the counters a fresh fetch gives."""
    from inform.services import notifications_mark_all_read, send_inform
    from realtime import transport

    user = make_user("badge")
    # the layer this process publishes to (bin/test's Redis), as live_url's daphne
    env = {**os.environ, "DATABASE_URL": live_database_url()}
    server = Daphne(env, name=f"faults-counter-order-{first}").start()
    tab = Tab(server.url, session_cookie_for(user), reconnect=False, name="badge")
    tab.user = user
    held: list = []
    try:
        tab.start()
        assert tab.ready.wait(15) and tab.failure is None, tab.failure
        tab.sync()
        wait_until(lambda: tab.sync_answers() == 1, 15, "the counters of a sync")
        with monkeypatch.context() as m:
            m.setattr(transport, "_send_now", held.extend)
            if first == "personal":
                (n,) = send_inform(to=user, verb="mention", text="first")
            else:
                (n,) = send_inform(everyone=True, verb="site_update", text="first")
            notifications_mark_all_read(user)
        assert [body["frame"]["type"] for _, body in held] == ["inform", "unread"]
        release_reversed(held)
        wait_until(lambda: n.id in tab.snapshot() and sum(e["type"] == "unread" for e in tab.events) >= 2, 15,
                   "both frames")
        unread = api_get(server.url, session_cookie_for(user), "/inform/api/unread/")["unread"]
        badge = tab.badge
    finally:
        tab.stop()
        server.stop()
    assert unread == 0
    assert badge == unread, f"the badge says {badge}, a fresh fetch {unread}"


# --- 4. a client that stops reading -------------------------------------------------

BACKLOG_BYTES = 256 * 1024  # WS_MAX_BACKLOG_BYTES for this test's daphne
UPDATES = 12_000
# daphne's RSS grows a little over the burst anyway (catch-up pages; see
# docs/reliability.md); one stalled socket may add its backlog bound and some slack,
# never the whole burst (12,000 frames of over 1 kB each).
STALLED_RSS_BOUND_MIB = 6


def test_a_stalled_reader_is_dropped_and_costs_bounded_memory(private_redis, make_user):
    """Issue 9, finding 3. One signed-in socket completes its handshake and never reads
    again (a 4 KiB receive buffer) while 12,000 site updates are pushed: daphne's RSS
    stays bounded, the stalled socket is closed (4413, or at least dropped), and two
    readers get every update once."""
    stalled_user, *readers = [make_user(name) for name in ("stalled", "r1", "r2")]
    env = server_env(private_redis, WS_MAX_BACKLOG_BYTES=BACKLOG_BYTES)
    # daphne's own ping timeout would drop a client that never answers pings, but not
    # one that reads just enough to answer them: keep it out of the way.
    server = Daphne(env, name="faults-stalled", args=("--ping-interval", "600", "--ping-timeout", "600")).start()
    tabs: list[Tab] = []
    pusher = None
    peak = 0
    sampling = threading.Event()
    try:
        tabs = open_tabs(server.url, readers, reconnect=False)
        stalled = RawStalledSocket(server.url, session_cookie_for(stalled_user))
        pid = server.proc.pid
        baseline = rss_kib(pid)

        def sample():
            nonlocal peak
            while not sampling.is_set():
                peak = max(peak, rss_kib(pid))
                sampling.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        pusher = Pusher(env, "--everyone", "--count", str(UPDATES), "--text-size", "500", "--url-size", "500",
                        "--progress", "1000")
        pusher.wait(240)
        pushed_in = time.monotonic() - started
        expected = settle(tabs, timeout=60)
        sampling.set()
        sampler.join()
        try:
            wait_until(lambda: stalled.server_side_state() != "ESTABLISHED", 10, "daphne to drop the stalled socket")
        except AssertionError:
            pass
        state = stalled.server_side_state()
        frames, code, ended = stalled.drain(timeout=5)
        numbers = check("stalled-reader/readers", tabs, expected)
        growth_mib = (peak - baseline) / 1024
        figure("stalled-reader/stalled", sent=UPDATES, received=frames, close_code=code, ended=ended,
               server_side=state, rss_growth_mib=round(growth_mib, 1), pushed_in_s=round(pushed_in, 1))
        stalled.close()
    finally:
        sampling.set()
        if pusher:
            pusher.kill()
        stop_all(tabs)
        server.stop()
    assert all(len(e) == UPDATES for e in expected.values())
    assert (numbers["lost"], numbers["duplicated"], numbers["extra"]) == (0, 0, 0), (
        numbers, [(min(e), t.repeated, [ev for ev in t.events if ev["type"] != "unread"][:10]) for t, e in expected.items()])
    assert state != "ESTABLISHED", "daphne kept the stalled socket"
    assert code in (4413, None), code
    assert frames < UPDATES, f"the stalled socket was sent all {frames} frames"
    assert growth_mib < STALLED_RSS_BOUND_MIB, f"daphne grew {growth_mib:.1f} MiB"


# --- 5. PostgreSQL restarted under open sockets -------------------------------------


def test_postgres_restarted_under_open_sockets(private_redis, make_user):
    """A private PostgreSQL cluster (a copy of the test database) is restarted while
    5 users have a socket that stays open and a resuming client each: the open sockets
    stay open, a push after the restart reaches them, a sync on them is answered
    (no error), and the resuming clients reconnect and resume."""
    users = [make_user(f"u{i}") for i in range(5)]
    cookies = {u: session_cookie_for(u) for u in users}
    pg = PrivatePostgres().start()
    tabs: list[Tab] = []
    server = None
    try:
        pg.psql("postgres", "CREATE DATABASE mblog")
        dump = subprocess.run(["pg_dump", "--no-owner", "--no-acl", live_database_url()], capture_output=True,
                              check=True, timeout=60).stdout
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", f"{pg.base_url()}/mblog"], input=dump,
                       capture_output=True, check=True, timeout=60)
        env = {**server_env(private_redis), "DATABASE_URL": f"{pg.base_url()}/mblog"}

        def committed(user) -> set[int]:
            return {int(x) for x in pg.psql("mblog", f"SELECT id FROM inform_notification WHERE recipient_id = {user.pk}"
                                            ).split()}

        server = Daphne(env, name="faults-pg-restart").start()
        open_, resuming = [], []
        for u in users:
            for reconnect, group in ((False, open_), (True, resuming)):
                tab = Tab(server.url, cookies[u], reconnect=reconnect, name=f"{u.username}-{reconnect}")
                tab.user = u
                tab.start()
                group.append(tab)
        tabs = open_ + resuming
        for tab in tabs:
            assert tab.ready.wait(15) and tab.failure is None, tab.failure
        names = ",".join(u.username for u in users)
        Pusher(env, "--to", names, "--progress", "1").wait(60)
        wait_until(lambda: all(len(t.snapshot()) == 1 for t in tabs), 15, "the push before the restart")

        pg.pg_ctl("restart")
        marks = {t: len(t.events) for t in tabs}
        Pusher(env, "--to", names, "--progress", "1").wait(60)
        wait_until(lambda: all(len(t.snapshot()) == 2 for t in open_), 15, "the push after the restart")
        answers = {t: t.sync_answers() for t in tabs}
        for tab in open_:
            tab.sync()  # on the socket that stayed open
        for tab in resuming:
            tab.drop()  # a new socket: its handshake reads the session, then it syncs
        try:
            wait_until(lambda: all(t.sync_answers() > answers[t] for t in tabs), 15, "sync answers after the restart")
        except AssertionError:
            pass
        unanswered = [t.name for t in tabs if t.sync_answers() <= answers[t]]
        errors = [e for t in tabs for e in t.events[marks[t]:] if e["type"] == "error"]
        expected = settle(tabs, timeout=15, committed=committed)
        open_numbers = check("pg-restart/open", open_, expected)
        resume_numbers = check("pg-restart/resuming", resuming, expected)
        figure("pg-restart/syncs", asked=len(tabs), unanswered=len(unanswered), errors=len(errors))
        closed = [t.close_codes for t in open_ if t.closed.is_set()]
    finally:
        stop_all(tabs)
        if server:
            server.stop()
        pg.cleanup()
    assert all(len(e) == 2 for e in expected.values())
    assert not errors, errors
    assert not unanswered, unanswered
    assert_delivered(open_numbers, resume_numbers, closed)


# --- 5b. a sender whose Redis connection went stale ---------------------------------


def test_a_sender_with_a_stale_redis_connection_loses_nothing(private_redis, make_user):
    """Redis restarts while a long-lived sender (a worker) is idle; daphne's hub notices
    at once (its subscriber connection drops) and heals before anything is lost. The
    sender's next push then goes out over its stale connection: nothing else would ever
    tell the hub that this push failed, so the sender must retry it on a new connection."""
    user = make_user("quiet")
    env = server_env(private_redis)
    server = Daphne(env, name="faults-stale-sender").start()
    pusher = Pusher(env, "--serve")
    tab = Tab(server.url, session_cookie_for(user), reconnect=False, name="stale-sender")
    try:
        tab.user = user
        tab.start()
        assert tab.ready.wait(15) and tab.failure is None, tab.failure
        pusher.push(user.username, 1)  # the sender's connection is now open
        wait_until(lambda: len(tab.snapshot()) == 1, 15, "the first push")
        answers = tab.sync_answers()
        private_redis.kill()
        private_redis.start()
        wait_until(lambda: tab.sync_answers() > answers, 20, "the hub to heal after the restart")
        pusher.push(user.username, 1)  # over the connection Redis closed when it went away
        try:
            wait_until(lambda: len(tab.snapshot()) == 2, 10, "the push after the restart")
        except AssertionError:
            pass
        expected = stream_ids(user)
        numbers = tally([tab], {tab: expected})
        figure("stale-sender/open", **numbers)
    finally:
        pusher.kill()
        tab.stop()
        server.stop()
    assert len(expected) == 2 and numbers["lost"] == 0, numbers


# --- 6. churn -----------------------------------------------------------------------

CYCLES = 10_000
BATCH = 100  # cycles in flight at once
CRASH_FRAME = "[" * 2000 + "]" * 2000  # inside the frame size limit; too deep for the parser's recursion
# What "back at baseline" allows once the churn is over and every churned socket closed:
FD_SLACK = 10  # open files of daphne
REDIS_CLIENT_SLACK = 5  # connections the layer's pool may keep for later
CHURN_RSS_BOUND_MIB = 24  # allocator high-water marks after 10,000 sockets, not a consumer kept per socket


async def churn_cycle(url: str, i: int, cookies: list[str], codes: dict, crash: bool) -> None:
    """One socket: 5% signed in and sending CRASH_FRAME (unless not crash: syncing
    instead), 45% signed in and syncing, 50% anonymous; then closed by the client
    (unless the server closed it first)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    kind = "crash" if i % 20 == 0 and crash else "sync" if i % 20 < 10 else "anonymous"
    headers = [("Cookie", cookies[(i // 20) % len(cookies)])] if kind != "anonymous" else []
    async with connect(url, origin=url.replace("ws://", "http://").removesuffix("/ws/inform/"),
                       additional_headers=headers, compression=None, open_timeout=30, close_timeout=5,
                       ping_interval=None, proxy=None) as ws:
        try:
            if kind == "crash":
                await ws.send(CRASH_FRAME)
                await asyncio.wait_for(ws.recv(), 10)  # an error frame, or the close
            elif kind == "sync":
                await ws.send(json.dumps({"type": "sync", "after": 0}))
                while json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] not in ("unread", "synced"):
                    pass
        except ConnectionClosed:
            pass
    key = f"{kind}:{ws.close_code}"
    codes[key] = codes.get(key, 0) + 1


async def churn(url: str, cycles: int, cookies: list[str], codes: dict, crash: bool = True) -> None:
    for start in range(0, cycles, BATCH):
        await asyncio.gather(*(churn_cycle(url, i, cookies, codes, crash) for i in range(start, min(cycles, start + BATCH))))


def test_churn_leaves_nothing_behind(private_redis, make_user):
    """Issue 9, finding 4. 10,000 connect/disconnect cycles in batches of 100, 500 of them
    consumers that crash on a frame of 2,000 nested arrays: afterwards daphne's open
    files, its Redis connections and its subscribed groups are back at baseline, its RSS
    within a bound, and a socket open throughout still gets pushes."""
    users = [make_user(f"u{i:02d}") for i in range(20)]
    anchor_user = make_user("anchor")
    cookies = [session_cookie_for(u) for u in users]
    env = server_env(private_redis)
    server = Daphne(env, name="faults-churn").start()
    url = server.url.replace("http://", "ws://") + "/ws/inform/"
    anchor = Tab(server.url, session_cookie_for(anchor_user), reconnect=False, name="anchor")
    anchor.user = anchor_user
    codes: dict[str, int] = {}
    try:
        anchor.start()
        assert anchor.ready.wait(15) and anchor.failure is None
        pid = server.proc.pid
        # the anchor's hub channel and its groups (the site, its user, its sign-in), once it is alone
        baseline_channels = wait_until(private_redis.channels, 15, "the anchor's subscriptions")
        asyncio.run(churn(url, 400, cookies, {}, crash=False))  # warm-up: every user's group joined and left once
        try:
            wait_until(lambda: private_redis.channels() == baseline_channels, 15, "the warm-up's groups to be left")
        except AssertionError:
            raise AssertionError(f"after the warm-up: {private_redis.channels()}, before: {baseline_channels}") from None
        baseline = {"rss": rss_kib(pid), "fds": open_fds(pid), "redis": private_redis.clients()}
        started = time.monotonic()
        asyncio.run(churn(url, CYCLES, cookies, codes))
        churned_in = time.monotonic() - started

        def settled():
            return (private_redis.channels() == baseline_channels and open_fds(pid) <= baseline["fds"] + FD_SLACK
                    and private_redis.clients() <= baseline["redis"] + REDIS_CLIENT_SLACK)

        try:
            wait_until(settled, 20, "daphne to let go of the churned sockets")
        except AssertionError:
            pass
        after = {"rss": rss_kib(pid), "fds": open_fds(pid), "redis": private_redis.clients()}
        channels = private_redis.channels()
        Pusher(env, "--to", "anchor", "--progress", "1").wait(60)
        expected = settle([anchor], timeout=10)
        anchor_numbers = check("churn/anchor", [anchor], expected)
        growth_mib = (after["rss"] - baseline["rss"]) / 1024
        figure("churn", cycles=CYCLES, crashed=CYCLES // 20, seconds=round(churned_in, 1),
               rss_growth_mib=round(growth_mib, 1), fds=f"{baseline['fds']}->{after['fds']}",
               redis_clients=f"{baseline['redis']}->{after['redis']}",
               channels=f"{len(baseline_channels)}->{len(channels)}", closes=json.dumps(codes, sort_keys=True, separators=(",", ":")))
        closed = anchor.closed.is_set()
    finally:
        anchor.stop()
        server.stop()
    assert sum(codes.values()) == CYCLES, codes
    assert not closed
    assert anchor_numbers["lost"] == 0, anchor_numbers
    assert channels == baseline_channels, f"groups still subscribed: {sorted(set(channels) - set(baseline_channels))[:10]}"
    assert after["fds"] <= baseline["fds"] + FD_SLACK, after
    assert after["redis"] <= baseline["redis"] + REDIS_CLIENT_SLACK, after
    assert growth_mib < CHURN_RSS_BOUND_MIB, f"daphne grew {growth_mib:.1f} MiB"


# --- 7. random interleavings over three tabs (property-based) ---------------------

TABS = 3
PUSH = st.tuples(st.just("push"), st.integers(1, 3))
STEP = st.one_of(
    PUSH, PUSH, PUSH,  # pushes are what the other steps act on
    st.tuples(st.just("read"), st.integers(0, TABS - 1), st.integers(1, 2**8 - 1)),  # which of the tab's ids
    st.tuples(st.just("read_all"), st.integers(0, TABS - 1)),
    st.tuples(st.just("disconnect"), st.integers(0, TABS - 1)),
    st.tuples(st.just("blip"), st.sampled_from(["kill", "pause"])),
)
OUTAGE = 0.5  # seconds a blip lasts (steps go on meanwhile); a pause is shorter than the probe interval


def test_tabs_agree_with_a_fresh_fetch_after_random_interleavings(private_redis, make_user):
    """Pushes, reads, read-alls, disconnects and Redis blips (killed, or stopped for less
    than the probe interval) in random order over three tabs of one user, against a live
    daphne; afterwards every tab's badge (its last unread count) and list (its set of
    inform ids) equal a fresh fetch of /inform/api/unread/ and /inform/api/notifications/.
    Each example is a new user; steps run one after another without waiting for their
    effects, so pushes, frames and outages overlap."""
    env = server_env(private_redis, INFORM_HUB_PROBE_INTERVAL=1.0)
    server = Daphne(env, name="faults-property").start()
    pusher = Pusher(env, "--serve")
    names = itertools.count()
    totals = {"examples": 0, "steps": 0, "sent": 0, "received": 0, "lost": 0, "dropped": 0, "extra": 0}
    blip: list[threading.Thread] = []

    def end_blip():
        for t in blip:
            t.join()
        blip.clear()

    def start_blip(how: str):
        end_blip()
        if how == "kill":
            private_redis.kill()
            after = private_redis.start
        else:
            private_redis.pause()
            after = private_redis.resume
        timer = threading.Timer(OUTAGE, after)  # the outage lasts OUTAGE while the steps go on
        timer.start()
        blip.append(timer)

    @hsettings(max_examples=10, deadline=None, database=None, derandomize=bool(os.environ.get("CI")),
               phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck))
    @given(steps=st.lists(STEP, min_size=1, max_size=8))
    def example(steps):
        user = make_user(f"p{next(names)}")
        cookie = session_cookie_for(user)
        tabs = [Tab(server.url, cookie, reconnect=True, name=f"{user.username}-{i}") for i in range(TABS)]
        try:
            for tab in tabs:
                tab.user = user
                tab.start()
            for tab in tabs:
                assert tab.ready.wait(15) and tab.failure is None, tab.failure
            changes = 0  # counter changes asked for: each bumps the person's counters version once
            for step in steps:
                kind, *args = step
                if kind == "push":
                    pusher.push(user.username, args[0])
                    changes += args[0]
                elif kind == "read":
                    tab, pick = tabs[args[0]], args[1]
                    ids = sorted(tab.snapshot())
                    chosen = [i for k, i in enumerate(ids) if pick >> (k % 8) & 1]
                    if chosen:
                        tab.send({"type": "read", "ids": chosen})
                        changes += 1
                elif kind == "read_all":
                    tabs[args[0]].send({"type": "read_all"})
                    changes += 1
                elif kind == "disconnect":
                    tabs[args[0]].drop()
                else:
                    start_blip(args[0])
            end_blip()

            # Reads go out asynchronously: compare with a fresh fetch only once the server
            # has applied them all (a fetch before a read commits would see the state
            # before it while the tabs already show the state after it).
            def applied() -> int:
                return InformState.objects.filter(user=user).values_list("counters_version", flat=True).first()

            try:
                wait_until(lambda: applied() >= changes, 10, "the server to apply every step", interval=0.1)
            except AssertionError:
                pass

            def fresh():
                return api_get(server.url, cookie, "/inform/api/unread/")["unread"], stream_ids_via_api(server.url, cookie)

            def agree():
                unread, ids = fresh()
                return all(t.badge == unread and t.snapshot() == ids for t in tabs)

            try:
                wait_until(agree, SETTLE, "every tab to agree with a fresh fetch", interval=0.2)
            except AssertionError:
                pass
            unread, ids = fresh()
            numbers = tally(tabs, {t: ids for t in tabs})
            totals["examples"] += 1
            totals["steps"] += len(steps)
            for k in ("sent", "received", "lost", "dropped", "extra"):
                totals[k] += numbers[k]
            states = [(t.badge, sorted(t.snapshot())) for t in tabs]
            assert all(state == (unread, sorted(ids)) for state in states), (
                f"fresh fetch: unread {unread}, ids {sorted(ids)}; tabs (badge, ids): {states}; "
                f"changes applied {applied()} of {changes}")
        finally:
            end_blip()
            for tab in tabs:
                tab.stopping.set()
            for tab in tabs:
                tab.join(10)

    try:
        example()
    finally:
        end_blip()
        figure("property/tabs", **totals)
        pusher.kill()
        server.stop()
