"""Several hosts on this machine (issue 15): network namespaces joined by veth links to a
bridge, two application hosts each running the shipped deployment (nginx in front of
two daphne processes under supervisor, tests/test_deploy.py renders it), and Redis and
PostgreSQL on the bridge, reached over the links.

Checked: a push made on one host reaches sockets on both; each host's metrics (its
private listener) count its sockets; when one host's link goes down its clients
reconnect to the other and lose nothing.

Needs root (ip netns). Clients live outside both hosts, like browsers: each has a home
host and tries the other when its home does not answer (two DNS records)."""

import ctypes
import json
import os
import secrets
import socket
import ssl
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import websocket

from tests.faults import PrivatePostgres, PrivateRedis, Tab, figure, tally, wait_until
from tests.test_deploy import ORIGIN, PROCESSES, SERVER_NAME, Deployment, ensure_debian_packages

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

USERS = ("alice", "bob", "carol")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def sh(*args: str) -> None:
    r = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"{args}: {r.stderr}"


@contextmanager
def in_netns(name: str):
    """Run this thread (and the processes it starts) inside network namespace `name`."""
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        yield
    finally:
        _libc.setns(original, CLONE_NEWNET)
        os.close(target)
        os.close(original)


class Network:
    """A bridge in this namespace (the "switch", with Redis and PostgreSQL on it) and one
    namespace per host, each linked to the bridge by a veth pair."""

    def __init__(self):
        self.tag = f"{os.getpid() % 100000}"
        self.subnet = f"10.{200 + os.getpid() % 50}.{os.getpid() % 250}"
        self.bridge = f"mbbr{self.tag}"
        self.gateway = f"{self.subnet}.1"
        self.hosts: dict[str, str] = {}  # netns name -> address

    def up(self) -> "Network":
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        return self

    def add_host(self, n: int) -> tuple[str, str]:
        ns, address, outer = f"mbh{n}-{self.tag}", f"{self.subnet}.{10 + n}", f"mbv{n}-{self.tag}"
        sh("ip", "netns", "add", ns)
        self.hosts[ns] = address
        sh("ip", "link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "link", "set", outer, "master", self.bridge, "up")
        sh("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        return ns, address

    def link(self, n: int, state: str) -> None:
        sh("ip", "link", "set", f"mbv{n}-{self.tag}", state)

    def down(self) -> None:
        for ns in self.hosts:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


class AppHost(Deployment):
    """The shipped deployment, started inside a host's namespace and listening on its address."""

    def __init__(self, ns: str, address: str, database_url: str, redis_url: str, allow: str):
        super().__init__()
        self.ns, self.address = ns, address
        self.https_port, self.metrics_port = 443, 9101
        self.values.update(
            HTTP_LISTEN=f"{address}:80", HTTPS_LISTEN=f"{address}:443", METRICS_LISTEN=f"{address}:9101",
            METRICS_ALLOW=allow, DATABASE_URL=database_url, REDIS_URL=redis_url,
            CHANNEL_LAYER_PREFIX=f"mblogfleet{os.getpid()}",
        )

    def start(self, first: bool) -> None:
        self.prepare_venv()
        self.render()
        self.install_files()
        with in_netns(self.ns):
            # static files first: daphne reads the manifest of hashed names once
            self.manage("collectstatic", "--noinput", "-v0")
            if first:
                self.manage("migrate", "--noinput", "-v0")
                self.manage("seed_demo")
            self.start_supervisor()
        self.wait_healthy(range(PROCESSES), timeout=40)
        with in_netns(self.ns):
            self.start_nginx()

    def https(self, method, path, body=None, headers=None):
        import http.client

        context = ssl.create_default_context(cafile=str(self.cert))
        context.check_hostname = False
        conn = http.client.HTTPSConnection(self.address, 443, context=context, timeout=10)
        try:
            conn.request(method, path, body=body, headers={"Host": SERVER_NAME, **(headers or {})})
            response = conn.getresponse()
            return response, response.read()
        finally:
            conn.close()

    def push(self, users, text: str) -> dict[str, int]:
        with in_netns(self.ns):
            return self.send_informs(list(users), text)

    def metrics(self) -> dict[str, float]:
        """This host's figures: the sum over its daphne processes (scraped like Prometheus)."""
        totals: dict[str, float] = {}
        for i in range(PROCESSES):
            with urllib.request.urlopen(f"http://{self.address}:9101/metrics/{i}", timeout=5) as r:
                for line in r.read().decode().splitlines():
                    if line and not line.startswith("#"):
                        key, value = line.rsplit(" ", 1)
                        totals[key] = totals.get(key, 0.0) + float(value)
        return totals

    def stream(self, cookie: str) -> set[int]:
        ids: set[int] = set()
        after = 0
        while True:
            response, body = self.https("GET", f"/inform/api/notifications/?after={after}&limit=200",
                                        headers={"Cookie": cookie})
            page = json.loads(body)["notifications"]
            ids.update(n["id"] for n in page)
            if len(page) < 200:
                return ids
            after = page[-1]["id"]


# A dead link is noticed by the client's kernel within a few seconds: keepalive probes
# when idle, a user timeout when data is unacknowledged.
KEEPALIVE = (
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
    (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1),
    (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1),
    (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 2),
    (socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 3000),
    (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),
)


class FleetTab(Tab):
    """A resuming client (tests/faults.py Tab) over wss:// through nginx, with a home host
    and the other host to fall back on."""

    def __init__(self, hosts: list[AppHost], cookie: str, name: str):
        super().__init__(f"https://{hosts[0].address}", cookie, reconnect=True, name=name)
        self.hosts = hosts
        self.connected_to: list[str] = []

    def _connect(self) -> websocket.WebSocket:
        error = None
        for host in self.hosts:
            try:
                ws = websocket.create_connection(
                    f"wss://{host.address}/ws/inform/", host=SERVER_NAME, origin=ORIGIN, cookie=self.cookie,
                    sslopt={"ca_certs": str(host.cert), "check_hostname": False}, sockopt=KEEPALIVE, timeout=2,
                )
                self.connected_to.append(host.address)
                return ws
            except Exception as exc:
                error = exc
        raise error


@pytest.fixture(scope="module")
def fleet():
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    ensure_debian_packages()
    started = time.monotonic()
    net = Network().up()
    redis = PrivateRedis(bind=net.gateway)
    pg = PrivatePostgres(listen=net.gateway, trust_network=f"{net.subnet}.0/24")
    hosts: list[AppHost] = []
    try:
        redis.start()
        pg.start()
        db = f"mblog_fleet_{os.getpid()}"
        secret = secrets.token_urlsafe(50)  # one site: every host signs sessions with the same key
        pg.psql("postgres", f'CREATE DATABASE "{db}"')
        for n in (1, 2):
            ns, address = net.add_host(n)
            host = AppHost(ns, address, f"{pg.base_url()}/{db}", redis.url, f"{net.subnet}.0/24")
            host.values["SECRET_KEY"] = secret
            host.pid = f"{os.getpid()}-host{n}"  # names its logs in test-artifacts/
            hosts.append(host)
        # Both hosts boot at once, each from a thread of its own (a namespace is per thread).
        with ThreadPoolExecutor(2) as pool:
            for started_host in [pool.submit(host.start, first=n == 0) for n, host in enumerate(hosts)]:
                started_host.result()
        figure("multi-host setup", seconds=round(time.monotonic() - started, 1))
        yield net, hosts
    finally:
        errors = [e for host in reversed(hosts) for e in host.teardown()]
        for step in (redis.cleanup, pg.cleanup, net.down):  # the servers first: they listen on the bridge
            try:
                step()
            except Exception as exc:
                errors.append(repr(exc))
        assert not errors, errors


def test_a_push_reaches_both_hosts_and_a_host_that_goes_away_loses_nothing(fleet):
    net, (h1, h2) = fleet
    cookies = {name: h1.login(name) for name in USERS}
    assert h1.https("GET", "/metrics")[0].status == 404  # not served publicly
    before = {h: h.metrics() for h in (h1, h2)}
    # Each user has a tab whose home is host 1 and one whose home is host 2.
    tabs: list[FleetTab] = []
    try:
        for name in USERS:
            for home, other in ((h1, h2), (h2, h1)):
                tab = FleetTab([home, other], cookies[name], name=f"{name}@{home.address}")
                tab.user = name
                tab.start()
                tabs.append(tab)
        for tab in tabs:
            assert tab.ready.wait(20) and tab.failure is None, (tab.name, tab.failure, tab.events, tab.sockets,
                                                                 tab.close_codes, tab.connected_to)
        assert all(tab.connected_to[0] == tab.hosts[0].address for tab in tabs)
        open_on = {h: h.metrics()['realtime_open_sockets{user="signed_in"}'] for h in (h1, h2)}
        assert all(open_on[h] - before[h]['realtime_open_sockets{user="signed_in"}'] == len(USERS) for h in (h1, h2))

        def streams() -> dict:
            return {name: h2.stream(cookies[name]) for name in USERS}

        def all_hold(expected: dict) -> bool:
            return all(t.snapshot() == expected[t.user] for t in tabs)

        # a push made on host 1 reaches sockets on both hosts
        pushed = h1.push(USERS, "from host 1")
        expected = streams()
        assert all(pushed[name] in expected[name] for name in USERS)
        wait_until(lambda: all_hold(expected), 15, "every tab on both hosts to get the push")
        delivered = {h: h.metrics()["realtime_deliveries_total"] - before[h]["realtime_deliveries_total"]
                     for h in (h1, h2)}
        assert all(delivered[h] >= len(USERS) for h in (h1, h2)), delivered

        # host 1 drops off the network; pushes continue from host 2
        net.link(1, "down")
        t0 = time.monotonic()
        h2.push(USERS, "while host 1 is away")
        moved = [t for t in tabs if t.hosts[0] is h1]
        wait_until(lambda: all(t.connected_to[-1] == h2.address for t in moved), 30,
                   "host 1's clients to reconnect to host 2")
        reconnected_in = time.monotonic() - t0
        h2.push(USERS, "after the move")
        expected = streams()
        wait_until(lambda: all_hold(expected), 30, "every tab to hold its stream")
        numbers = tally(tabs, {t: expected[t.user] for t in tabs})
        on_h2 = h2.metrics()['realtime_open_sockets{user="signed_in"}']
        figure("multi-host: host 1 link down", **numbers, reconnected_in_s=round(reconnected_in, 1),
               sockets_on_host2=int(on_h2))
        assert numbers["lost"] == 0 and numbers["extra"] == 0
        assert on_h2 - before[h2]['realtime_open_sockets{user="signed_in"}'] == 2 * len(USERS)
    finally:
        for tab in tabs:
            tab.stopping.set()
        for tab in tabs:
            tab.join(10)
        net.link(1, "up")

