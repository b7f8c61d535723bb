"""Shared fixtures. Tests run against the real PostgreSQL and the real Redis channel
layer that bin/test provides (see its header); users come from make_user."""

import json

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

ORIGIN = b"http://127.0.0.1"
PASSWORD = "pw-for-tests-123"


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

    async def connect(self):
        self.connected, self.close_code = await self.comm.connect(timeout=5)
        return self.connected

    async def send(self, frame):
        await self.comm.send_to(text_data=frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self, timeout: float = 3) -> dict:
        return json.loads(await self.comm.receive_from(timeout=timeout))

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

import os  # noqa: E402
import socket as _socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def free_port() -> int:
    with _socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, timeout: float = 20, proc: subprocess.Popen | None = None) -> None:
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
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
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


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium chromium-driver (bin/test does)")
    # Playwright's sync API keeps an event loop in this thread; Django's ORM must be told
    # that sync calls from the test body are fine (only while these tests run).
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
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
def close_pooled_connections(django_db_setup, django_db_blocker):
    """Return pooled connections before pytest-django drops the test database (an open
    pool would keep it "being accessed by other users" and leave it behind)."""
    yield
    from django.db import connections

    with django_db_blocker.unblock():
        for conn in connections.all(initialized_only=True):
            conn.close()
            if getattr(conn, "pool", None):
                conn.close_pool()


def pytest_terminal_summary(terminalreporter):
    """The figure lines of the fault tests (tests/faults.py), whatever the capture mode."""
    faults = sys.modules.get("tests.faults")
    if faults is not None and faults.FIGURES:
        terminalreporter.section("fault figures")
        for line in faults.FIGURES:
            terminalreporter.write_line(line)
