"""Harness for the fault-matrix tests (tests/test_faults.py): private Redis and
PostgreSQL servers that a test may kill, pause or restart; daphne under supervisord;
test clients that behave like browser tabs; process figures from /proc; and the figure
lines each test prints (collected and shown at the end of the run by tests/conftest.py).

Nothing here touches the shared Redis or PostgreSQL that bin/test provides, except the
test database, which daphne processes started here read and write like any server.
"""

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import websocket

from tests.conftest import ARTIFACTS, ROOT, free_port, stop_process, wait_for_http, wait_until

FIGURES: list[str] = []  # "name: sent=… received=… lost=… duplicated=…", printed at the end of the run


def figure(name: str, **numbers) -> str:
    line = f"{name}: " + " ".join(f"{k}={v}" for k, v in numbers.items())
    FIGURES.append(line)
    print(line, flush=True)
    return line


# --- processes ------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def tcp_states(port: int) -> dict[tuple[int, int], str]:
    """{(local port, remote port): state} of the IPv4 TCP sockets with `port` at either end."""
    states = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
              "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}
    found = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)
        if port in (local, remote):
            found[(local, remote)] = states.get(fields[3], fields[3])
    return found


def manage(env: dict, *args, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, f"manage.py {args[0]} exited {result.returncode}: {result.stderr[-2000:]}"
    return result


class Pusher:
    """tests/pusher.py in a subprocess: a long-lived sender calling send_inform in a loop.
    Its stdout says how far it got ("sent N" lines, then "done")."""

    def __init__(self, env: dict, *args: str):
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "pusher.py"), *args], cwd=ROOT, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.sent = 0
        self.lines: list[str] = []
        self.done = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.strip())
            if line.startswith("sent "):
                self.sent = int(line.split()[1])
        self.done.set()

    def say(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def push(self, username: str, n: int, timeout: float = 30) -> None:
        """--serve mode: n notifications for username; returns once they are committed
        and their pushes published (or failed)."""
        answered = sum(1 for x in self.lines if x == "pushed")
        self.say(f"{username} {n}")
        wait_until(lambda: sum(1 for x in self.lines if x == "pushed") > answered or self.done.is_set(), timeout,
                   "the pusher to answer")
        assert not self.done.is_set(), f"pusher exited: {self.proc.stderr.read()[-2000:]}"

    def wait(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()  # left running, it would go on writing into the test database
            raise
        self.done.wait(5)
        assert self.proc.returncode == 0, f"pusher exited {self.proc.returncode}: {self.proc.stderr.read()[-2000:]}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class PrivateRedis:
    """A redis-server of this test's own on a free port: killable, pausable, restartable."""

    def __init__(self, bind: str = "127.0.0.1"):
        self.port = free_port()
        self.bind = bind
        self.dir = tempfile.mkdtemp(prefix="mblog-redis-")
        self.url = f"redis://{bind}:{self.port}/0"
        self.pid: int | None = None

    def start(self) -> "PrivateRedis":
        pidfile = os.path.join(self.dir, "redis.pid")
        subprocess.run(
            ["redis-server", "--port", str(self.port), "--bind", self.bind, "--save", "", "--appendonly", "no",
             # a test network's address (tests/test_multihost.py) is as private as loopback
             "--protected-mode", "no" if self.bind != "127.0.0.1" else "yes",
             "--dir", self.dir, "--daemonize", "yes", "--pidfile", pidfile,
             "--logfile", os.path.join(self.dir, "redis.log")],
            check=True,
        )
        wait_until(self.ping, 10, "the private redis to answer")
        self.pid = int(Path(pidfile).read_text())
        return self

    def cli(self, *args: str) -> str:
        r = subprocess.run(["redis-cli", "-h", self.bind, "-p", str(self.port), *args], capture_output=True, text=True,
                           timeout=10)
        return r.stdout

    def ping(self) -> bool:
        return self.cli("ping").strip() == "PONG"

    def kill(self) -> None:
        """SIGKILL: connections drop at once, nothing is saved."""
        os.kill(self.pid, signal.SIGKILL)
        wait_until(lambda: not _alive(self.pid), 10, "redis to die")

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.pid and _alive(self.pid):
            os.kill(self.pid, signal.SIGCONT)
            self.cli("shutdown", "nosave")
            wait_until(lambda: not _alive(self.pid), 10, "redis to stop")

    def channels(self) -> list[str]:
        """Pub/sub channels with a subscriber: each daphne's hub channel plus one per joined group."""
        return sorted(line for line in self.cli("pubsub", "channels").splitlines() if line)

    def clients(self) -> int:
        return sum(1 for line in self.cli("client", "list").splitlines() if line.startswith("id="))

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class PrivatePostgres:
    """A PostgreSQL cluster of this test's own (initdb into a temp dir, pg_ctl on a free
    port), restartable without touching the shared server. As root it runs as postgres."""

    def __init__(self, listen: str = "127.0.0.1", trust_network: str | None = None):
        self.port = free_port()
        self.listen = listen
        self.trust_network = trust_network  # a network whose clients may connect too (pg_hba trust)
        self.dir = Path(tempfile.mkdtemp(prefix="mblog-pg-"))
        self.data = self.dir / "data"
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.bin = Path(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip() or "")
        if not (self.bin / "initdb").exists():
            found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
            assert found, "no initdb: apt-get install postgresql"
            self.bin = found[-1].parent

    def base_url(self) -> str:
        return f"postgres://postgres@{self.listen}:{self.port}"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        r = subprocess.run([*self.as_user, *args], capture_output=True, text=True, timeout=timeout, cwd=self.dir)
        assert r.returncode == 0, f"{args} exited {r.returncode}: {r.stdout[-1000:]} {r.stderr[-1000:]}"
        return r

    def start(self) -> "PrivatePostgres":
        if self.as_user:
            self.dir.chmod(0o755)
            shutil.chown(self.dir, "postgres", "postgres")
        if not self.data.exists():
            self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync",
                      "-E", "UTF8", "--locale", "C")
            if self.trust_network:
                with open(self.data / "pg_hba.conf", "a") as hba:
                    hba.write(f"host all all {self.trust_network} trust\n")
        self.pg_ctl("start")
        return self

    def pg_ctl(self, action: str) -> None:
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses={self.listen} -c fsync=off -c full_page_writes=off"
                " -c max_connections=200")
        args = [str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "pg.log"), "-w", "-t", "30"]
        if action in ("start", "restart"):
            args += ["-o", opts]
        if action in ("stop", "restart"):
            args += ["-m", "fast"]
        self._run(*args, action)

    def psql(self, db: str, sql: str) -> str:
        r = subprocess.run(["psql", f"{self.base_url()}/{db}", "-v", "ON_ERROR_STOP=1", "-qtAc", sql],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def cleanup(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self.pg_ctl("stop")
            except AssertionError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


class SupervisedDaphne:
    """One daphne under a supervisord of its own (autorestart), as deploy/ runs them."""

    def __init__(self, env: dict, name: str = "supervised"):
        ARTIFACTS.mkdir(exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = Path(tempfile.mkdtemp(prefix="mblog-supervisor-"))
        self.conf = self.dir / "supervisord.conf"
        self.env = env
        self.log_path = ARTIFACTS / f"{name}-{self.port}.log"
        self.conf.write_text(f"""[supervisord]
logfile={self.dir}/supervisord.log
pidfile={self.dir}/supervisord.pid
childlogdir={self.dir}

[unix_http_server]
file={self.dir}/supervisor.sock

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{self.dir}/supervisor.sock

[program:daphne]
command={sys.executable} -m daphne -b 127.0.0.1 -p {self.port} mblog.asgi:application
directory={ROOT}
autostart=true
autorestart=true
startsecs=1
startretries=10
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile={self.log_path}
""")

    def start(self) -> "SupervisedDaphne":
        # supervisord passes its own environment to the programs it starts
        self.proc = subprocess.Popen(["supervisord", "-n", "-c", str(self.conf)], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_http(self.url + "/healthz", timeout=30, proc=self.proc)
        return self

    def ctl(self, *args: str) -> str:
        return subprocess.run(["supervisorctl", "-c", str(self.conf), *args], capture_output=True, text=True,
                              timeout=30).stdout.strip()

    def pid(self) -> int:
        out = self.ctl("pid", "daphne")
        return int(out) if out.isdigit() else 0

    def stop(self) -> None:
        stop_process(self.proc, 20)
        shutil.rmtree(self.dir, ignore_errors=True)


# --- clients --------------------------------------------------------------------------


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://") + "/ws/inform/"


def api_get(base_url: str, cookie: str, path: str) -> dict:
    req = urllib.request.Request(base_url + path, headers={"Cookie": cookie})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def stream_ids_via_api(base_url: str, cookie: str) -> set[int]:
    """The user's whole stream as the site serves it (/inform/api/notifications/)."""
    ids: set[int] = set()
    after = 0
    while True:
        page = api_get(base_url, cookie, f"/inform/api/notifications/?after={after}&limit=200")["notifications"]
        ids.update(n["id"] for n in page)
        if len(page) < 200:
            return ids
        after = page[-1]["id"]


CLOSED_NORMALLY = 1000


class Tab(threading.Thread):
    """One browser tab's /ws/inform/ socket, in a thread.

    reconnect=False, a socket that stays open: it never reconnects and sends nothing
    unless told to; it collects the inform ids it is sent. An id sent twice on one
    socket is a repeat (a defect on a socket that stays open).

    reconnect=True, a client that resumes: it sends {"type":"sync","after":cursor} on
    every open, where cursor is the last `synced` cursor it got (servers that answer a
    sync without one: the highest id it holds, as the browser did); on a close it opens
    a new socket. Ids it already holds are dropped (counted as `resent` when a later
    socket sends them again, expected after a reconnect). On `reset` it reloads its
    list from /inform/api/notifications/.

    The badge follows the browser's rule (static/inform/inform.js, docs/protocol.md): the
    newest counters the server told it (by their `version`, whatever order they arrive
    in), plus one for each site update (an inform frame without counters) they do not
    include yet."""

    def __init__(self, base_url: str, cookie: str | None, *, reconnect: bool, name: str = "tab"):
        super().__init__(daemon=True, name=name)
        self.base_url, self.cookie, self.reconnect = base_url, cookie, reconnect
        self.lock = threading.Lock()
        self.ids: set[int] = set()
        self.repeats = 0  # an id sent twice on one socket
        self.repeated: list[int] = []  # the first few such ids, for the failure message
        self.resent = 0  # an id sent again on a later socket (dropped)
        self.cursor = 0
        self.got_synced = False
        self.badge: int | None = None
        self.version: list[int] | None = None  # of the counters the badge shows
        self.counted_above: set[int] = set()  # site updates counted on top of them
        self.stale_counters = 0  # counter frames ignored as older than those shown
        self.resets = 0
        self.sockets = 0  # sockets opened
        self.close_codes: list[int | None] = []
        self.events: list[dict] = []  # every frame but inform frames, in order
        self.ready = threading.Event()  # open, and (when it syncs on open) its first sync answered
        self.closed = threading.Event()  # a socket that stays open was closed
        self.stopping = threading.Event()
        self.ws: websocket.WebSocket | None = None
        self.failure: BaseException | None = None
        self._drop = threading.Event()
        self._outbox: list[dict] = []

    # what a test calls
    def send(self, frame: dict) -> None:
        with self.lock:
            self._outbox.append(frame)

    def sync(self) -> None:
        self.send({"type": "sync", "after": self.cursor_to_send()})

    def drop(self) -> None:
        """Close this socket from the client side (a reconnecting tab then resumes)."""
        self._drop.set()

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)

    def snapshot(self) -> set[int]:
        with self.lock:
            return set(self.ids)

    def sync_answers(self) -> int:
        """How many sync answers this tab has had (their closing `synced` frames; on a
        server that sends none, their `unread` frames)."""
        with self.lock:
            kind = "synced" if self.got_synced else "unread"
            return sum(1 for e in self.events if e["type"] == kind)

    def cursor_to_send(self) -> int:
        with self.lock:
            if self.got_synced:
                return self.cursor
            return max(self.ids, default=0)

    # the thread
    def run(self):
        try:
            self._loop()
        except BaseException as exc:  # surfaced by the test
            self.failure = exc
            self.ready.set()
            self.closed.set()

    def _connect(self) -> websocket.WebSocket:
        headers = [f"Cookie: {self.cookie}"] if self.cookie else []
        return websocket.create_connection(ws_url(self.base_url), header=headers, origin=self.base_url, timeout=5)

    def _loop(self):
        backoff = 0.05
        while not self.stopping.is_set():
            try:
                ws = self._connect()
            except Exception:
                if not self.reconnect:
                    raise
                time.sleep(backoff)
                backoff = min(1.0, backoff * 2)
                continue
            self.ws = ws
            self.sockets += 1
            sent_here: set[int] = set()
            if self.reconnect and self.cookie:
                ws.send(json.dumps({"type": "sync", "after": self.cursor_to_send()}))
            else:
                self.ready.set()
            code = self._read(ws, sent_here)
            try:
                ws.close(timeout=1)
            except Exception:
                pass
            self.close_codes.append(code)
            if code is not None and code != CLOSED_NORMALLY:
                backoff = max(backoff, 0.2)  # a refused socket (the layer down) is retried calmly
            else:
                backoff = 0.05
            if not self.reconnect:
                self.closed.set()
                return

    def _read(self, ws, sent_here: set[int]) -> int | None:
        """Read until the socket closes (its close code; None if it just dropped) or the
        tab is stopped or told to drop (CLOSED_NORMALLY)."""
        ws.settimeout(0.1)
        while True:
            if self.stopping.is_set() or self._drop.is_set():
                self._drop.clear()
                return CLOSED_NORMALLY
            with self.lock:
                outbox, self._outbox = self._outbox, []
            try:
                for frame in outbox:
                    ws.send(json.dumps(frame))
                opcode, data = ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                continue
            except (websocket.WebSocketConnectionClosedException, OSError):
                return None
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
            if opcode == websocket.ABNF.OPCODE_TEXT:
                self._frame(json.loads(data), sent_here)

    def _counters(self, frame: dict) -> None:
        """Absolute counters, unless older than those shown (docs/protocol.md); a server
        without versions: the last one told."""
        version = frame.get("version")
        if version is None:
            self.badge = frame["unread"]
            return
        if self.version is not None and version < self.version:
            self.stale_counters += 1
            return
        self.version = version
        self.counted_above = {i for i in self.counted_above if i > version[1]}
        self.badge = frame["unread"] + len(self.counted_above)

    def _frame(self, frame: dict, sent_here: set[int]) -> None:
        kind = frame.get("type")
        with self.lock:
            if kind == "inform":
                fid = frame["id"]
                if fid in sent_here:
                    self.repeats += 1
                    if len(self.repeated) < 20:
                        self.repeated.append(fid)
                elif fid in self.ids:
                    self.resent += 1
                new = fid not in self.ids
                sent_here.add(fid)
                self.ids.add(fid)
                if "unread" in frame:
                    self._counters(frame)
                elif new and self.badge is not None and not (self.version and fid <= self.version[1]):
                    self.counted_above.add(fid)  # a site update the counters shown do not include
                    self.badge += 1
            else:
                self.events.append(frame)
            if kind == "unread":
                self._counters(frame)
            elif kind == "synced":
                self.got_synced = True
                self.cursor = frame["cursor"]
        if kind == "reset":
            fresh = stream_ids_via_api(self.base_url, self.cookie)
            with self.lock:
                self.resets += 1
                self.ids = fresh
                self.cursor = max(fresh, default=0)
        if kind in ("unread", "synced", "reset"):
            self.ready.set()


class RawStalledSocket:
    """A WebSocket handshake done by hand on a socket with a small receive buffer, after
    which nothing is read: a client that has stopped reading."""

    def __init__(self, base_url: str, cookie: str | None = None, rcvbuf: int = 4096):
        host, port = base_url.removeprefix("http://").split(":")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect((host, int(port)))
        self.local_port = self.sock.getsockname()[1]
        self.server_port = int(port)
        request = (
            f"GET /ws/inform/ HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: {base_url}\r\n"
            + (f"Cookie: {cookie}\r\n" if cookie else "") + "\r\n"
        )
        self.sock.sendall(request.encode())
        head = b""
        self.sock.settimeout(10)
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)  # byte by byte: nothing past the handshake is read
            assert chunk, "the server closed during the handshake"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head

    def server_side_state(self) -> str | None:
        """The state of daphne's end of this connection (None: gone)."""
        return tcp_states(self.server_port).get((self.server_port, self.local_port))

    def drain(self, timeout: float = 10) -> tuple[int, int | None, str]:
        """Read everything now: (text frames, close code or None, how it ended)."""
        self.sock.settimeout(timeout)
        buf = b""
        frames = 0
        ended = "timeout"
        try:
            while True:
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    ended = "eof"
                    break
                buf += chunk
                while True:
                    parsed = _parse_frame(buf)
                    if parsed is None:
                        break
                    opcode, payload, buf = parsed
                    if opcode == 1:
                        frames += 1
                    elif opcode == 8:
                        return frames, (struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None), "close"
        except ConnectionResetError:
            ended = "reset"
        except TimeoutError:
            ended = "timeout"
        return frames, None, ended

    def close(self) -> None:
        self.sock.close()


def _parse_frame(buf: bytes):
    """One unmasked server frame off the front of buf: (opcode, payload, rest) or None."""
    if len(buf) < 2:
        return None
    opcode, n = buf[0] & 0x0F, buf[1] & 0x7F
    i = 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, i = struct.unpack("!H", buf[2:4])[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, i = struct.unpack("!Q", buf[2:10])[0], 10
    if len(buf) < i + n:
        return None
    return opcode, buf[i : i + n], buf[i + n :]


def tally(tabs: list[Tab], expected: dict[Tab, set[int]]) -> dict:
    """sent / received / lost / duplicated over these tabs (extra: ids not in the stream).

    duplicated: ids sent twice on one socket, for tabs that stay open (a defect).
    Resuming tabs report dropped instead: ids they already held and dropped, re-sent
    after a reconnect or a live frame crossing a sync answer (expected, de-duplicated)."""
    sent = received = lost = extra = 0
    for tab in tabs:
        got, want = tab.snapshot(), expected[tab]
        sent += len(want)
        received += len(got & want)
        lost += len(want - got)
        extra += len(got - want)
    numbers = {"sent": sent, "received": received, "lost": lost}
    if any(t.reconnect for t in tabs):
        numbers["dropped"] = sum(t.repeats + t.resent for t in tabs)
    else:
        numbers["duplicated"] = sum(t.repeats for t in tabs)
    numbers["extra"] = extra
    return numbers
