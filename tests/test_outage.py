"""Redis goes away under a running daphne: requests still succeed, rows are stored, and
open sockets get what they missed once Redis is back, without asking (realtime.hub heals).

Uses a private Redis on a free port, never the shared one."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pytest
import websocket

from tests.conftest import ROOT, Daphne, free_port, live_database_url, session_cookie_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class PrivateRedis:
    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="mblog-redis-")

    def start(self):
        subprocess.run(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--daemonize", "yes", "--logfile", os.path.join(self.dir, "redis.log")],
            check=True,
        )
        for _ in range(100):
            if self.ping():
                return self
            time.sleep(0.05)
        raise RuntimeError("private redis did not start")

    def ping(self) -> bool:
        r = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True)
        return r.stdout.strip() == "PONG"

    def stop(self):
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", "nosave"], capture_output=True)
        for _ in range(100):
            if not self.ping():
                return
            time.sleep(0.05)


@pytest.fixture
def private_redis():
    redis = PrivateRedis().start()
    yield redis
    redis.stop()
    shutil.rmtree(redis.dir, ignore_errors=True)


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def recv(ws, timeout=8.0) -> dict:
    ws.settimeout(timeout)
    return json.loads(ws.recv())


def recv_inform(ws, timeout=8.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        frame = recv(ws, max(0.1, deadline - time.monotonic()))
        if frame["type"] == "inform":
            return frame


def test_redis_outage_loses_nothing_and_open_sockets_catch_up(private_redis, make_user):
    alice = make_user("alice")
    env = {
        **os.environ,
        "DATABASE_URL": live_database_url(),
        "REDIS_URL": f"redis://127.0.0.1:{private_redis.port}/0",
        "INFORM_HUB_PROBE_INTERVAL": "0.3",
    }
    server = Daphne(env, name="outage").start()
    try:
        ws = websocket.create_connection(
            server.url.replace("http", "ws") + "/ws/inform/",
            header=[f"Cookie: {session_cookie_for(alice)}"], origin=server.url,
        )

        def send_inform(text):
            result = subprocess.run(
                [sys.executable, "manage.py", "send_inform", "--to", "alice", "--verb", "mention", "--text", text],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=30,
            )
            assert result.returncode == 0, result.stderr
            return result

        send_inform("before the outage")
        assert recv_inform(ws)["text"] == "before the outage"
        # A second tab that has been sent nothing yet (no sync, no push) catches up too.
        ws2 = websocket.create_connection(
            server.url.replace("http", "ws") + "/ws/inform/",
            header=[f"Cookie: {session_cookie_for(alice)}"], origin=server.url,
        )

        private_redis.stop()
        during = send_inform("during the outage")  # stored; the push fails quietly
        assert "sent 1 notification" in during.stdout
        assert http_status(server.url + "/healthz") == 503

        private_redis.start()  # back, and empty
        # Nobody sends a sync: the hub notices the layer is back and the socket catches up.
        frame = recv_inform(ws, timeout=15)
        assert frame["text"] == "during the outage"
        # It starts from shortly before it opened, so it may get older ids again (the
        # client drops those); what matters is that the missed one arrives.
        texts = [recv_inform(ws2, timeout=15)["text"] for _ in range(2)]
        assert texts[-1] == "during the outage" and set(texts) <= {"before the outage", "during the outage"}
        ws2.close()
        send_inform("after the outage")
        assert recv_inform(ws)["text"] == "after the outage"
        ws.close()
    finally:
        server.stop()


def test_a_push_that_cannot_reach_redis_never_fails_the_request(settings, client, make_user):
    from inform.models import Notification

    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": dead, "socket_connect_timeout": 1}]},
        }
    }
    alice, bob = make_user("alice"), make_user("bob")
    client.force_login(alice)
    response = client.post("/u/bob/follow/")
    assert response.status_code == 302
    n = Notification.objects.get(recipient=bob)
    assert (n.verb, n.actor) == ("follow", alice)
