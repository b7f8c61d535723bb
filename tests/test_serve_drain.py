"""realtime/serve.py, the daphne that the deploy files run, on its own: SIGTERM drains
(new connections refused at once, WebSockets closed with 1001, the socket path never
missing, the next process takes it over) and running out of open files is logged.
(tests/test_deploy.py proves the same through nginx during a rolling restart.)"""

import os
import resource
import signal
import socket
import stat
import subprocess
import sys

import pytest
import websocket

from tests.conftest import ROOT, wait_until

pytestmark = pytest.mark.slow  # real server processes


def start(path, log, env=None, preexec_fn=None):
    return subprocess.Popen(
        [sys.executable, "-m", "realtime.serve", "-e", f"unix:{path}:mode=660", "tests.asgi_tiny:application"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "DRAIN_SECONDS": "1", **(env or {})},
        preexec_fn=preexec_fn,
    )


def answers(path) -> bool:
    try:
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return sock.recv(100).startswith(b"HTTP/1.1 200")
    except OSError:
        return False
    finally:
        sock.close()


def ws_open(path, timeout=5):
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(path))
    return websocket.create_connection("ws://localhost/ws/", socket=sock, timeout=timeout)


def test_sigterm_drains_and_the_next_process_takes_the_socket_over(tmp_path):
    path = tmp_path / "d.sock"
    log = open(tmp_path / "log", "w+")
    first = start(path, log)
    try:
        wait_until(lambda: answers(path), 20, "the first server")
        sockets = [ws_open(path) for _ in range(3)]
        first.send_signal(signal.SIGTERM)
        codes = []
        for ws in sockets:
            opcode, data = ws.recv_data()
            assert opcode == websocket.ABNF.OPCODE_CLOSE
            codes.append(int.from_bytes(data[:2], "big"))
            ws.close()
        assert codes == [1001, 1001, 1001]
        # refused, not missing: nginx moves on to another process without a [crit] line
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        refused = socket.socket(socket.AF_UNIX)
        try:
            refused.connect(str(path))
            raise AssertionError("a draining process accepted a new connection")
        except ConnectionRefusedError:
            pass
        finally:
            refused.close()
        assert first.wait(15) == 0
        assert stat.S_ISSOCK(os.stat(path).st_mode)  # still there after the exit
        second = start(path, log)
        try:
            wait_until(lambda: answers(path), 20, "the next server on the same path")
        finally:
            second.terminate()
            second.wait(15)
    finally:
        if first.poll() is None:
            first.kill()
    log.seek(0)
    text = log.read()
    assert "drain: refusing new connections; closing 3 WebSockets with 1001" in text, text
    assert "Traceback" not in text, text


def test_running_out_of_open_files_is_logged(tmp_path):
    path = tmp_path / "d.sock"
    log = open(tmp_path / "log", "w+")
    limit = 64

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    server = start(path, log, preexec_fn=low_limit)
    held = []
    try:
        wait_until(lambda: answers(path), 20, "the server")
        for _ in range(limit):
            try:
                held.append(ws_open(path, timeout=2))
            except (OSError, websocket.WebSocketException):
                break

        def logged():
            log.seek(0)
            return "open-file limit reached (64 files)" in log.read()

        wait_until(logged, 10, "the open-file limit in the log")
        assert len(held) < limit
    finally:
        for ws in held:
            ws.close()
        server.kill()
        server.wait(10)
