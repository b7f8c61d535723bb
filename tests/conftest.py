"""Shared fixtures. Tests run against the real PostgreSQL and the real Redis channel
layer that bin/test provides (see its header); users come from make_user."""

import asyncio
import contextlib
import json
import os
import random
import socket as _socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from django.test.utils import override_settings

ORIGIN = b"http://127.0.0.1"
PASSWORD = "pw-for-tests-123"


# Per-test limits (pytest-timeout): pytest.ini's `timeout` for the fast tier, this for
# tests that start servers or a browser. An explicit @pytest.mark.timeout wins.
SLOW_TIMEOUT = 600


def pytest_configure(config):
    """In a parallel run (bin/test: pytest-xdist) each worker has a test database of its own
    (pytest-django suffixes its name with the worker id), so user ids repeat across workers:
    their channel groups and cache keys must not meet in the one Redis. Settings are loaded
    before this runs, but no channel layer is built yet; servers a worker starts inherit
    os.environ."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker or "CHANNEL_LAYER_PREFIX" not in os.environ:
        return
    from channels.layers import channel_layers

    assert not channel_layers.backends, "a channel layer was built before the worker's prefix was set"
    prefix = os.environ["CHANNEL_LAYER_PREFIX"] = f"{os.environ['CHANNEL_LAYER_PREFIX']}{worker}"
    layers = {name: {**conf, "CONFIG": dict(conf.get("CONFIG", {}))} for name, conf in settings.CHANNEL_LAYERS.items()}
    for conf in layers.values():
        if "prefix" in conf["CONFIG"]:
            conf["CONFIG"]["prefix"] = prefix
    settings.CHANNEL_LAYERS = layers
    caches = {name: dict(conf) for name, conf in settings.CACHES.items()}
    for conf in caches.values():
        if "KEY_PREFIX" in conf:
            conf["KEY_PREFIX"] = prefix
    settings.CACHES = caches


def pytest_itemcollected(item):
    # A test on the live server starts daphne: slow, however it is marked.
    if item.get_closest_marker("slow") is None and (
        item.get_closest_marker("browser") or "live_url" in getattr(item, "fixturenames", ())
    ):
        item.add_marker(pytest.mark.slow)
    if item.get_closest_marker("timeout") is None and item.get_closest_marker("slow"):
        item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))
    # Parallel runs (--dist loadgroup): tests that share a module-scoped fixture (a
    # browser, a deployment) go to one worker, which sets it up once.
    # A group a module names itself (HEAVY_GROUP, below) stands.
    fixturedefs = getattr(item, "_fixtureinfo", None)
    if item.get_closest_marker("xdist_group") is None and fixturedefs and any(
        d.scope == "module" for defs in fixturedefs.name2fixturedefs.values() for d in defs
    ):
        item.add_marker(pytest.mark.xdist_group(item.module.__name__))


# The deployment tests judge daphne processes by a health watcher (2 unanswered checks of
# 1 s: killed, and its sockets drop) and the benchmark smoke tests start a dozen
# processes: run on the same worker, one after the other, a 2-core machine does not
# starve the first with the second (a CI run lost a socket so, twice).
HEAVY_GROUP = pytest.mark.xdist_group("deployment-and-benchmarks")


def transactional(item) -> bool:
    db = item.get_closest_marker("django_db")
    return bool(db and (db.kwargs.get("transaction") or db.kwargs.get("reset_sequences"))) or bool(
        {"transactional_db", "live_server"} & set(getattr(item, "fixturenames", ()))
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """Parallel runs: workers take tests in this order as they free up (bin/test passes
    --no-loadscope-reorder), each one a part of it. Every worker keeps pytest-django's rule:
    no test in a rolled-back transaction after a transactional one, whose flush empties
    what data migrations made (the lobby). Within that, long tests first, so that none
    starts last and keeps the run waiting. A group goes where its most demanding test would."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return

    def group(item):
        mark = item.get_closest_marker("xdist_group")
        return mark.args[0] if mark else item.nodeid

    keys: dict[str, tuple[bool, bool]] = {}
    for item in items:
        flushes, fast = keys.get(group(item), (False, True))
        keys[group(item)] = (flushes or transactional(item), fast and item.get_closest_marker("slow") is None)
    items.sort(key=lambda item: keys[group(item)])  # stable: pytest-django's order within a key


@pytest.fixture(scope="session", autouse=True)
def fast_password_hasher():
    """Tests only: MD5 instead of PBKDF2, which costs a quarter of a second per user.
    Servers the tests start as processes keep the production hashers."""
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(autouse=True)
def own_cache(settings):
    """Request budgets live in the cache (Redis under bin/test): each test gets keys of its own."""
    import uuid

    caches = {name: dict(conf) for name, conf in settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = f"{caches['default'].get('KEY_PREFIX', '')}.{uuid.uuid4().hex[:12]}"
    settings.CACHES = caches


@pytest.fixture
def make_user(django_user_model):
    def make(username: str, **extra):
        return django_user_model.objects.create_user(username=username, password=PASSWORD, **extra)

    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob")


@pytest.fixture
def as_alice(alice):
    c = Client()
    c.force_login(alice)
    return c


class Pushes(list):
    """(group, body) of every channel-layer group send, in order."""

    def frames(self, group: str | None = None) -> list[dict]:
        return [body["frame"] for g, body in self if group is None or g == group]


def server_frame_schema(path: str):
    """The schema every server frame of this socket path must match (inform/frames.py,
    chat/frames.py): tests check each frame they receive or capture against it."""
    from chat.frames import SERVER_FRAME as CHAT
    from inform.frames import SERVER_FRAME as INFORM

    return CHAT if path.startswith("/ws/chat/") else INFORM


def check_pushed(group: str, body: dict) -> None:
    if "frame" in body:
        schema = server_frame_schema("/ws/chat/" if group.startswith("chat.") else "/ws/inform/")
        schema.validate(body["frame"])
        if "anonymous_frame" in body:
            schema.validate(body["anonymous_frame"])


@pytest.fixture
def capture_pushes(monkeypatch, django_capture_on_commit_callbacks):
    """`with capture_pushes() as pushes:` records every group send made inside the block
    instead of sending it (Zulip's capture_send_event_calls): no Redis, no hub, no
    transaction=True. It records where realtime.transport would reach the layer, so
    after-commit sends are recorded only when they run: the test's transaction never
    commits, and the block runs the on-commit callbacks itself when it ends, the way a
    commit would. Pushes of a rolled-back savepoint are never recorded, and none before
    the end of the block (assert after it)."""
    from realtime import transport

    @contextlib.contextmanager
    def capture():
        pushes = Pushes()

        def record(sends):
            for group, body in sends:
                check_pushed(group, body)
                pushes.append((group, body))

        async def arecord(group, body):
            record([(group, body)])

        with monkeypatch.context() as m:
            m.setattr(transport, "_send_now", record)
            m.setattr(transport, "agroup_send", arecord)
            with django_capture_on_commit_callbacks(execute=True):
                yield pushes

    return capture


def session_cookie_for(user) -> str:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


class Socket:
    """A WebsocketCommunicator over the whole ASGI app (origin check, auth, routing)."""

    def __init__(self, path: str, cookie: str | None = None, origin: bytes | None = ORIGIN):
        from mblog.asgi import application

        headers = [(b"host", b"127.0.0.1")]
        if origin is not None:
            headers.append((b"origin", origin))
        if cookie:
            headers.append((b"cookie", cookie.encode()))
        self.comm = WebsocketCommunicator(application, path, headers=headers)
        self.connected = False
        self.schema = server_frame_schema(path)

    async def connect(self, timeout: float = 5):
        # The communicator would wait out the whole timeout when the app raises (an
        # unknown path): stop waiting as soon as the app has failed.
        connecting = asyncio.ensure_future(self.comm.connect(timeout=timeout))
        await asyncio.wait([connecting, self.comm.future], return_when=asyncio.FIRST_COMPLETED)
        app = self.comm.future
        if not connecting.done() and app.done() and not app.cancelled() and app.exception() is not None:
            connecting.cancel()
            raise app.exception()
        self.connected, self.close_code = await connecting
        return self.connected

    async def send(self, frame):
        await self.comm.send_to(text_data=frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self, timeout: float = 3) -> dict:
        """The next frame, checked against the server-frame schema of its socket."""
        frame = json.loads(await self.comm.receive_from(timeout=timeout))
        self.schema.validate(frame)
        return frame

    async def recv_until(self, type_: str, timeout: float = 3) -> dict:
        while True:
            frame = await self.recv(timeout)
            if frame["type"] == type_:
                return frame

    async def silent(self, timeout: float = 0.3) -> bool:
        return await self.comm.receive_nothing(timeout=timeout)

    async def close(self):
        if self.connected:
            await self.comm.disconnect()
            self.connected = False


@pytest.fixture
async def sockets():
    """Open sockets with `await sockets.open(path, user=…)`; all closed at teardown."""
    from channels.db import database_sync_to_async

    opened: list[Socket] = []

    class Opener:
        async def open(self, path="/ws/inform/", user=None, origin=ORIGIN, expect=True) -> Socket:
            cookie = await database_sync_to_async(session_cookie_for)(user) if user is not None else None
            s = Socket(path, cookie, origin)
            opened.append(s)
            ok = await s.connect()
            assert ok == expect, f"connect to {path} gave {ok}, code {getattr(s, 'close_code', None)}"
            return s

    yield Opener()
    for s in opened:
        await s.close()


# --- real servers for browser and end-to-end tests ---------------------------------

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


_ports = random.Random()  # its own: Hypothesis reseeds the global one inside its tests


def free_port() -> int:
    """A port nothing listens on, for a server about to start. Picked below the kernel's
    ephemeral range: with tests running in parallel, another worker's outgoing connections
    (the deploy test opens 10,000) could otherwise take it before the server binds."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    while True:
        port = _ports.randrange(10000, low)
        with _socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    """Ask a process the tests started to stop; kill it if it does not within timeout."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll predicate until it returns something true; AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_for_http(url: str, timeout: float = 60, proc: subprocess.Popen | None = None) -> None:
    # Generous: it returns as soon as the server answers (or exits), and a loaded machine
    # running tests in parallel can take tens of seconds to start one.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered {url} within {timeout}s")


class Daphne:
    """One daphne process serving mblog.asgi on a free port, with the given environment."""

    def __init__(self, env: dict, name: str = "daphne", args: tuple[str, ...] = ()):
        ARTIFACTS.mkdir(exist_ok=True)
        self.args = args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = ARTIFACTS / f"{name}-{self.port}.log"
        self.env = env

    def start(self) -> "Daphne":
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), *self.args,
             "mblog.asgi:application"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        wait_for_http(self.url + "/healthz", proc=self.proc)
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


def live_database_url() -> str:
    """The URL of the pytest test database (valid once django_db_setup has run)."""
    from django.db import connection

    base = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
    return f"{base}/{connection.settings_dict['NAME']}"


@pytest.fixture(scope="session")
def live_url(django_db_setup, django_db_blocker):
    """A real daphne serving the test database with the Redis layer (tests: transactional_db)."""
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pytest.skip("live server tests need PostgreSQL (run them with bin/test)")
    server = Daphne({**os.environ, "DATABASE_URL": live_database_url()}, name="live").start()
    yield server.url
    server.stop()


def sockets_down(page) -> None:
    """For a page that goes offline: Playwright's offline mode does not cover WebSockets
    (microsoft/playwright#4910), so a page could reconnect at once. Until sockets_up(),
    each socket the page opens closes as one does with the network down (1006), counted
    in window.failedSockets. Close the page's open socket and see it closed before
    context.set_offline(True): in one CI run, a socket closed just after the context
    went offline left the chat page "live" for the whole 15 s wait."""
    page.evaluate("""() => {
        window.realWebSocket = window.WebSocket;
        window.failedSockets = 0;
        window.WebSocket = function () {
            window.failedSockets += 1;
            const down = { readyState: 3, close() {}, send() { throw new Error("the network is down"); } };
            setTimeout(() => down.onclose && down.onclose({ code: 1006, reason: "" }), 0);
            return down;
        };
    }""")


def sockets_up(page) -> None:
    page.evaluate("() => { window.WebSocket = window.realWebSocket; }")


def open_page(context, url):
    """A new page of the browser context at url, once its live connection is up."""
    from playwright.sync_api import expect

    page = context.new_page()
    page.goto(url)
    expect(page.locator("#live-status")).to_have_text("live")
    return page


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import expect, sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium chromium-driver (bin/test does)")
    # Playwright's sync API keeps an event loop in this thread; Django's ORM must be told
    # that sync calls from the test body are fine (only while these tests run).
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    # Every expect() waits until its condition holds; its limit only bounds a failure, and
    # 5 s (Playwright's default) is short for a page on a loaded machine.
    expect.set_options(timeout=15_000)
    try:
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            yield b
            b.close()
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture
def login(live_url):
    """login(context, user): the context carries user's session cookie for the live server."""

    def add_session(context, user):
        name, value = session_cookie_for(user).split("=", 1)
        context.add_cookies([{"name": name, "value": value, "url": live_url}])

    return add_session


@pytest.fixture(scope="session", autouse=True)
def flush_outlives_a_deadlock():
    """A transactional test ends with a flush (one TRUNCATE of every table). The live
    daphne may still be finishing what the test's last page started (a closing socket's
    writes), taking its locks in another order: PostgreSQL then aborts one of the two. When
    that is the flush, it runs again, and waits for the other to finish."""
    from django.db import connection
    from django.db.utils import OperationalError

    ops = type(connection.ops)
    flush = ops.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        for attempt in range(5):
            try:
                return flush(self, sql_list)
            except OperationalError as exc:
                if "deadlock detected" not in str(exc) or attempt == 4:
                    raise

    with pytest.MonkeyPatch.context() as m:
        m.setattr(ops, "execute_sql_flush", execute_sql_flush)
        yield


@pytest.fixture(scope="session", autouse=True)
def close_pooled_connections(django_db_setup, django_db_blocker):
    """Return pooled connections before pytest-django drops the test database (an open
    pool would keep it "being accessed by other users" and leave it behind). Threads that
    async tests ran ORM calls in (sync_to_async) keep theirs open, out of reach: ended too."""
    yield
    from django.db import connection, connections

    if not getattr(type(connections["default"]), "_connection_pools", None):
        return  # no test used the database, so pytest-django never created it: nothing open
    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("select pg_terminate_backend(pid) from pg_stat_activity"
                               " where datname = current_database() and pid <> pg_backend_pid()")
        for conn in connections.all(initialized_only=True):
            conn.close()
            if getattr(conn, "pool", None):
                conn.close_pool()


WORKER_FIGURES: list[str] = []  # the fault figures of the xdist workers, gathered by the controller


def pytest_sessionfinish(session):
    """An xdist worker hands its fault figures to the controller, which prints them."""
    faults = sys.modules.get("tests.faults")
    if hasattr(session.config, "workeroutput") and faults is not None:
        session.config.workeroutput["fault_figures"] = list(faults.FIGURES)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    WORKER_FIGURES.extend(getattr(node, "workeroutput", {}).get("fault_figures", []))


def pytest_terminal_summary(terminalreporter):
    """The figure lines of the fault tests (tests/faults.py), whatever the capture mode
    and however many workers ran them."""
    faults = sys.modules.get("tests.faults")
    lines = WORKER_FIGURES + (faults.FIGURES if faults is not None else [])
    if lines:
        terminalreporter.section("fault figures")
        for line in lines:
            terminalreporter.write_line(line)
