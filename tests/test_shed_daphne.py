"""realtime.shed under a real daphne (realtime/serve.py): at the handshake cap the process
stops accepting for a bounded time, so new connections wait in the kernel's listen queue
instead of being accepted only to be shed or to time out."""

import os
import socket
import subprocess
import sys
import time

import pytest

from realtime.shed import PAUSE_SECONDS
from tests.conftest import ROOT, stop_process, wait_until

pytestmark = pytest.mark.slow  # a real server process


def listen_queue(path) -> int:
    """Connections waiting in the kernel's queue of the listening Unix socket at path."""
    out = subprocess.run(["ss", "-xln"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        fields = line.split()
        if str(path) in fields:
            return int(fields[2])
    raise AssertionError(f"nothing listens on {path}:\n{out}")


def unix_connect(path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(15)
    sock.connect(str(path))
    return sock


def test_at_the_handshake_cap_daphne_stops_accepting_for_a_bounded_time(tmp_path):
    """Under daphne, while the handshakes in progress are at the cap, new connections wait
    in the kernel's listen queue (no handshake timer runs there); the pause ends by itself
    even while the handshakes stay stuck, and the held handshakes still complete."""
    path, release = tmp_path / "d.sock", tmp_path / "release"
    env = {**os.environ, "WS_MAX_PENDING_HANDSHAKES": "2", "SHED_RELEASE_FILE": str(release)}
    log = open(tmp_path / "log", "w+")
    server = subprocess.Popen(
        [sys.executable, "-m", "realtime.serve", "-e", f"unix:{path}:mode=660", "tests.asgi_shed:application"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    held, probes = [], []
    try:
        wait_until(lambda: answers(path), 30, "the server")
        for _ in range(2):
            sock = unix_connect(path)
            sock.sendall(UPGRADE)
            held.append(sock)

        def three_waiting() -> bool:
            probes.append(unix_connect(path))
            return listen_queue(path) >= 3

        wait_until(three_waiting, 5, "three connections waiting in the listen queue")
        # Handshakes still held: the pause ends by itself, and every waiting connection is served.
        assert all(http_ok(p) for p in probes)
        assert not release.exists()
        release.touch()
        for sock in held:
            assert sock.recv(100).startswith(b"HTTP/1.1 101")
    finally:
        for sock in held + probes:
            sock.close()
        stop_process(server)
    log.seek(0)
    assert "Traceback" not in log.read()


def test_a_burst_of_handshakes_is_taken_a_cap_at_a_time_and_none_is_shed(tmp_path):
    """The process accepts only as many connections as it may start handshakes, and leaves
    the rest in the listen queue until handshakes end. (Twisted accepts up to 100 waiting
    connections at once, and 20 more each time it finds more; all past the cap were shed,
    each costing the process nearly a whole handshake: in a storm of 16,000 sockets over 4
    processes, 2.7 sheds per socket and 4,149 not synced in 60 s, docs/scaling.md.)"""
    path = tmp_path / "d.sock"
    env = {**os.environ, "WS_MAX_PENDING_HANDSHAKES": "2", "SHED_HOLD_SECONDS": "0.2"}
    log = open(tmp_path / "log", "w+")
    server = subprocess.Popen(
        [sys.executable, "-m", "realtime.serve", "-e", f"unix:{path}:mode=660", "tests.asgi_shed:application"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    socks = []
    try:
        wait_until(lambda: answers(path), 30, "the server")
        socks = [upgrade(path) for _ in range(20)]
        answers_ = [first_frames(sock) for sock in socks]
        assert all(a.startswith(b"HTTP/1.1 101") for a in answers_), answers_
        shed = [a for a in answers_ if b"overloaded" in a]
        assert not shed, f"{len(shed)} of {len(socks)} shed"
    finally:
        for sock in socks:
            sock.close()
        stop_process(server)
    log.seek(0)
    assert "Traceback" not in log.read()


def test_http_requests_that_arrive_open_the_gate_again(tmp_path):
    """Connections accepted count against the handshake cap until they reach the
    application; an HTTP request reaching it must let the port accept again at once, not
    only when a handshake ends or the pause runs out (1 s for every cap's worth)."""
    path = tmp_path / "d.sock"
    env = {**os.environ, "WS_MAX_PENDING_HANDSHAKES": "2"}
    log = open(tmp_path / "log", "w+")
    server = subprocess.Popen(
        [sys.executable, "-m", "realtime.serve", "-e", f"unix:{path}:mode=660", "tests.asgi_shed:application"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until(lambda: answers(path), 30, "the server")
        started = time.monotonic()
        socks = [unix_connect(path) for _ in range(10)]
        assert all(http_ok(sock) for sock in socks)
        assert time.monotonic() - started < PAUSE_SECONDS
    finally:
        stop_process(server)


def upgrade(path) -> socket.socket:
    sock = unix_connect(path)
    sock.sendall(UPGRADE)
    return sock


def first_frames(sock: socket.socket) -> bytes:
    """The handshake's answer and whatever the server sends right after it (a shed socket:
    the `overloaded` frame and the close; an accepted one: nothing)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
    sock.settimeout(0.3)
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except TimeoutError:
        pass
    return data


UPGRADE = (b"GET /ws/x/ HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def http_ok(sock: socket.socket) -> bool:
    with sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return sock.recv(100).startswith(b"HTTP/1.1 200")


def answers(path) -> bool:
    try:
        return http_ok(unix_connect(path))
    except OSError:
        return False
