"""The embedded default, as README's serve command runs it: SQLite and the in-process
layer, no Redis or PostgreSQL. One person follows another over HTTP; the other's open
socket hears it."""

import http.cookiejar
import json
import os
import re
import signal
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
import websocket

from tests.conftest import ROOT, free_port, wait_for_http

pytestmark = pytest.mark.slow


class Browser:
    """Just enough of a browser: cookies and Django's CSRF token."""

    def __init__(self, base):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def cookie(self, name):
        return next(c.value for c in self.jar if c.name == name)

    def get(self, path):
        with self.opener.open(self.base + path, timeout=10) as r:
            return r.read().decode()

    def post(self, path, data):
        body = urllib.parse.urlencode({"csrfmiddlewaretoken": self.cookie("csrftoken"), **data}).encode()
        req = urllib.request.Request(self.base + path, data=body, headers={"Referer": self.base + path})
        with self.opener.open(req, timeout=10) as r:
            return r.read().decode()

    def login(self, username, password):
        self.get("/accounts/login/")
        page = self.post("/accounts/login/", {"username": username, "password": password})
        assert f">{username}</a>" in page, "login failed"


@pytest.fixture
def embedded_server(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY")}
    env.update(PORT=str(port), DJANGO_DEBUG="1", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([str(ROOT / "bin" / "serve")], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(base + "/healthz", timeout=120, proc=proc)
        yield base, tmp_path / "serve.log"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
        log.close()


def test_serve_command_runs_the_site_on_sqlite_and_the_in_process_layer(embedded_server):
    base, log_path = embedded_server
    assert json.loads(urllib.request.urlopen(base + "/healthz").read())["status"] == "ok"
    assert "serves ONE server process only" in log_path.read_text()

    alice, admin = Browser(base), Browser(base)
    alice.login("alice", "demo-pass-123")  # seed_demo ran
    admin.login("admin", "demo-pass-123")
    home = alice.get("/")
    assert "Two pointers, explained with pictures" in home
    badge = re.search(r'id="inform-badge"[^>]*data-unread="(\d*)"', home).group(1)

    ws = websocket.create_connection(
        base.replace("http", "ws") + "/ws/inform/", cookie=f"sessionid={alice.cookie('sessionid')}", origin=base
    )
    ws.settimeout(10)
    # The demo staff account follows nobody yet; bob and carol follow alice (seed_demo),
    # so admin's follow joins their unread follow group in place: same count on the badge.
    admin.post("/u/alice/follow/", {})
    frame = json.loads(ws.recv())
    assert (frame["type"], frame["verb"], frame["actor"], frame["count"]) == ("inform", "follow", "admin", 3)
    assert frame["unread"] == int(badge or 0)
    ws.close()


def frame_where(ws, predicate, timeout: float = 15) -> dict:
    """The first frame that satisfies predicate (others are skipped), within timeout."""
    deadline = time.monotonic() + timeout
    while True:
        ws.settimeout(max(0.1, deadline - time.monotonic()))
        frame = json.loads(ws.recv())
        if predicate(frame):
            return frame


def test_pushes_from_another_process_reach_the_served_site(embedded_server):
    """bin/manage send_inform is another process: the in-process layer cannot carry its
    push, the server's tail of the notifications table does (inform/tail.py)."""
    base, log_path = embedded_server
    alice = Browser(base)
    alice.login("alice", "demo-pass-123")
    ws_url = base.replace("http", "ws") + "/ws/inform/"
    signed_in = websocket.create_connection(ws_url, cookie=f"sessionid={alice.cookie('sessionid')}", origin=base)
    anonymous = websocket.create_connection(ws_url, origin=base)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY")}
    env.update(DJANGO_DEBUG="1", DATABASE_URL=f"sqlite:///{log_path.parent / 'db.sqlite3'}")  # as the fixture
    manage = [str(ROOT / "bin" / "manage"), "send_inform"]

    def send(*args: str) -> None:
        done = subprocess.run([*manage, *args], env=env, capture_output=True, timeout=60, text=True)
        assert done.returncode == 0, done.stdout + done.stderr

    try:
        send("--to", "alice", "--verb", "mention", "--text", "from another process")
        frame = frame_where(signed_in, lambda f: f["type"] == "inform")
        assert (frame["verb"], frame["text"]) == ("mention", "from another process")
        send("--all", "--verb", "site_update", "--text", "maintenance at ten")
        assert frame_where(signed_in, lambda f: f["type"] == "inform")["text"] == "maintenance at ten"
        feed = frame_where(anonymous, lambda f: f["type"] == "feed" and f["event"] == "site_update")
        assert feed["text"] == "maintenance at ten"
    finally:
        signed_in.close()
        anonymous.close()
