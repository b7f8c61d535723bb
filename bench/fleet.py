"""Fleet benchmark: P daphne processes, N signed-in sockets spread over them, 1 or 2 Redis
servers (issue 15). Beside bench/run.py (one process), same style: one command, bounded,
progress, JSON and a PNG.

1. raw        one `websockets` process holding all N sockets, B broadcasts (the yardstick)
2. connect    N signed-in sockets, spread round-robin over the P processes; memory
3. broadcast  B site updates one at a time: push → receipt over all N, spread first→last;
              a burst for deliveries/s; Redis and PostgreSQL CPU per 1,000 deliveries
4. personal   send_inform(to=random user) at --rate/s for --seconds: stored → receipt
5. storm      every socket dropped at once (RST) and back: clients reconnect with jitter,
              sync, and obey "retry after" (close 4503) when a process sheds load;
              time until all are synced again, database transactions/s, the most
              PostgreSQL connections, processes alive at the end

    .venv/bin/python bench/fleet.py                               # P=4, N=4000, 2 Redis
    .venv/bin/python bench/fleet.py --procs 4 --clients 16000 --redis 2

Starts its own redis-servers on free ports; PostgreSQL at 127.0.0.1:5432 as bench/run.py.
Writes bench/results/fleet-P<P>-N<N>-R<R>.json and .png and prints the figures with
pass/fail against the issue's goals.
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import run as bench_run  # noqa: E402
from bench.run import (  # noqa: E402
    ORIGIN,
    RESULTS,
    TEXT_PREFIX,
    Clients,
    Profiler,
    Senders,
    broadcast_figures,
    burst_figures,
    drop_sessions,
    free_port,
    log,
    ms,
    pct,
    phase_raw,
    prepare_database,
    rss_kb,
    setup_django,
    start_daphne,
)


class Redis:
    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="mblog-fleet-redis-")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        subprocess.run(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no", "--daemonize", "yes", "--dir", self.dir,
                        "--pidfile", f"{self.dir}/redis.pid", "--logfile", f"{self.dir}/redis.log"], check=True)
        for _ in range(100):
            if self.cli("ping") == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def cli(self, *args) -> str:
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True).stdout.strip()

    def cpu_seconds(self) -> float:
        info = dict(line.split(":", 1) for line in self.cli("info", "cpu").splitlines() if ":" in line)
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    def stop(self) -> None:
        self.cli("shutdown", "nosave")
        shutil.rmtree(self.dir, ignore_errors=True)


def proc_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Postgres:
    """The bench database's server side: its backends' CPU, transactions, connections."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.name = url.rsplit("/", 1)[1]
        self.conn = psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True)

    def backends(self) -> list[int]:
        return [r[0] for r in self.conn.execute("select pid from pg_stat_activity where datname = %s", (self.name,))]

    def connections(self) -> int:
        return len(self.backends())

    def transactions(self) -> int:
        row = self.conn.execute("select xact_commit + xact_rollback from pg_stat_database where datname = %s",
                                (self.name,)).fetchone()
        return int(row[0])

    def cpu(self) -> dict[int, float]:
        return {pid: proc_cpu_seconds(pid) for pid in self.backends()}


def cpu_delta(before: dict, after: dict) -> float:
    return sum(after[p] - before.get(p, 0.0) for p in after)


def push_site_update_id(k: int, tag: str) -> tuple[int, float]:
    """send_inform(everyone=True): (its id, the commit time). Signed-in sockets get it as an
    inform frame with that id."""
    from django.db import transaction

    from inform.services import send_inform

    stamp = {}
    with transaction.atomic():
        transaction.on_commit(lambda: stamp.setdefault("t", time.monotonic()))
        (sent,) = send_inform(everyone=True, verb="site_update", text=f"{TEXT_PREFIX}{tag}{k}")
    return sent.id, stamp["t"]


def run_broadcasts(clients: Clients, n: int, count: int, burst: int) -> dict:
    """bench/run.py's run_broadcasts for signed-in sockets (receipts keyed by id)."""
    clients.collect()
    pushes = {}
    for k in range(count):
        nid, t0 = push_site_update_id(k, "b")
        pushes[nid] = t0
        ok = clients.wait_received(n * (k + 1), timeout=30)
        log(f"  fleet broadcast {k + 1}/{count}: {clients.received() - n * k}/{n} delivered{'' if ok else ' (TIMEOUT)'}")
        time.sleep(0.15)
    figures = broadcast_figures(clients.collect(), pushes, n, [])
    bursts = dict(push_site_update_id(k, "x") for k in range(burst))
    ok = clients.wait_received(n * burst, timeout=60)
    log(f"  fleet burst of {burst}: {clients.received()}/{n * burst} delivered{'' if ok else ' (TIMEOUT)'}")
    figures["burst"] = burst_figures(clients.collect(), bursts, n)
    return figures


def spread_connect(clients: Clients, ports: list[int], users: list, batch: int) -> dict:
    """Signed-in sockets, round-robin over the processes, in batches below the shedding cap
    (the storm phase is where they all come at once)."""
    ok = failed = 0
    t0 = time.monotonic()
    for i, port in enumerate(ports):
        part = [cookie for _, cookie in users[i :: len(ports)]]
        opened = 0
        for j in range(0, len(part), batch):
            r = clients.connect(port, "/ws/inform/", part[j : j + batch], timeout=60)
            opened, failed = opened + r["ok"], failed + r["failed"]
        ok += opened
        log(f"  connect: process {i + 1}/{len(ports)}: {opened}/{len(part)} open")
    return {"attempted": len(users), "ok": ok, "failed": failed, "seconds": round(time.monotonic() - t0, 2)}


def phase_personal(args, clients: Clients, users: list) -> dict:
    total = int(args.rate * args.seconds)
    log(f"personal: send_inform(to=random user) at {args.rate}/s for {args.seconds} s ({total} pushes, "
        f"{args.push_procs} sending processes of {args.push_threads} threads)")
    clients.collect()
    rng = random.Random(42)
    targets = [rng.choice(users)[0].pk for _ in range(total)]
    senders = Senders(args.push_procs, args.push_threads)
    try:
        done = senders.run(targets, args.rate, True, lambda: log(f"  personal: {clients.received()} frames received"))
    finally:
        senders.quit()
    sent, start, finished = done["sent"], done["start"], done["finished"]
    deadline = time.monotonic() + 10
    while clients.received() < len(sent) and time.monotonic() < deadline:
        time.sleep(0.05)
    got: dict[int, float] = {}
    for t, kind, key in clients.collect():
        if kind == "inform" and key in sent:
            got[key] = min(got.get(key, t), t)
    lat = [got[i] - sent[i] for i in got]
    from django.db import connections

    connections.close_all()
    out = {"rate_target": args.rate, "rate_achieved": round(len(sent) / (finished - start), 1), "sent": len(sent),
           "send_errors": done["errors"], "sending_processes": args.push_procs, "received": len(got), "lost": len(sent) - len(got),
           "p50_ms": ms(pct(lat, 50)), "p99_ms": ms(pct(lat, 99)), "max_ms": ms(max(lat, default=None)),
           "_latencies": lat}
    log(f"  personal: sent {out['sent']} at {out['rate_achieved']}/s, lost {out['lost']}, p50 {out['p50_ms']} ms, "
        f"p99 {out['p99_ms']} ms")
    return out


def phase_storm(args, clients: Clients, ports: list[int], users: list, pg: Postgres, servers) -> dict:
    n = len(users)
    log(f"storm: all {n} sockets dropped at once, back within {args.storm_jitter} s of jitter, each syncs")
    clients.close()
    xact0, max_conns = pg.transactions(), [pg.connections()]
    sampling = threading.Event()

    def sample():
        while not sampling.wait(0.2):
            max_conns.append(pg.connections())

    sampler = threading.Thread(target=sample, daemon=True)
    # CPU seconds, not only wall time: on a shared 2-core machine the wall time swings with
    # other work, the CPU a storm costs the servers and the clients much less.
    server_cpu0 = sum(proc_cpu_seconds(s.pid) for s in servers)
    client_cpu0 = sum(proc_cpu_seconds(p.pid) for p in clients.procs)
    sampler.start()
    cookies = [cookie for _, cookie in users]
    parts = [cookies[i :: len(clients.pipes)] for i in range(len(clients.pipes))]
    res = clients._all("storm", per_worker=[("127.0.0.1", ports, "/ws/inform/", ORIGIN, part, args.storm_jitter,
                                            args.storm_timeout) for part in parts])
    sampling.set()
    sampler.join()
    xact1 = pg.transactions()
    server_cpu = sum(proc_cpu_seconds(s.pid) for s in servers) - server_cpu0
    client_cpu = sum(proc_cpu_seconds(p.pid) for p in clients.procs) - client_cpu0
    rows = [c for r in res for c in r["clients"]]
    synced = sorted(c["synced_at"] for c in rows if c["synced_at"] is not None)
    all_in = synced[-1] if len(synced) == n else None
    out = {
        "sockets": n,
        "synced": len(synced),
        "all_synced_s": round(all_in, 2) if all_in is not None else None,
        "p50_synced_s": round(pct(synced, 50), 2) if synced else None,
        "shed": sum(c["sheds"] for c in rows),
        "attempts_max": max((c["attempts"] for c in rows), default=0),
        "handshakes": sum(c["attempts"] for c in rows),
        "failures": dict(sum((Counter(r["failures"]) for r in res), Counter()).most_common(8)),
        "server_cpu_s": round(server_cpu, 1),
        "server_cpu_ms_per_socket": round(1000 * server_cpu / n, 2),
        "client_cpu_s": round(client_cpu, 1),
        "db_transactions": xact1 - xact0,
        "db_transactions_per_s": round((xact1 - xact0) / all_in) if all_in else None,
        "db_connections_max": max(max_conns),
        "processes_alive": sum(1 for s in servers if s.proc.poll() is None),
        "_timeline": synced,
    }
    log(f"  storm: {out['synced']}/{n} synced, all in {out['all_synced_s']} s, {out['shed']} shed (4503), "
        f"{out['db_transactions']} db transactions, at most {out['db_connections_max']} db connections, "
        f"{out['processes_alive']}/{len(servers)} processes alive; {out['handshakes']} handshakes, "
        f"servers {out['server_cpu_s']} s CPU ({out['server_cpu_ms_per_socket']} ms per socket), "
        f"clients {out['client_cpu_s']} s CPU; attempts that failed: {out['failures']}")
    return out


def goals(result: dict) -> dict:
    """Each goal true/false, or None when its phase was skipped."""
    b, raw, p, m, s = (result.get(k) for k in ("broadcast", "raw", "personal", "memory", "storm"))
    spread = (b or {}).get("last_p50_ms")
    raw_spread = (raw or {}).get("broadcast", {}).get("last_p50_ms")
    return {
        "broadcast_spread_le_1.5x_raw": (spread <= 1.5 * raw_spread) if spread and raw_spread else None,
        "broadcast_zero_lost": b["missing"] == 0 if b else None,
        "personal_p99_le_50ms_at_rate": p["p99_ms"] is not None and p["p99_ms"] <= 50
        and p["rate_achieved"] >= 0.95 * p["rate_target"] if p else None,
        "personal_zero_lost": p["lost"] == 0 and p["sent"] > 0 if p else None,
        "memory_le_20kb_per_socket": m["kb_per_socket"] is not None and m["kb_per_socket"] <= 20,
        "storm_all_synced_within_30s": s["all_synced_s"] is not None and s["all_synced_s"] <= 30,
        "storm_no_process_lost": s["processes_alive"] == result["procs"],
    }


def chart(result: dict, latencies: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for ax, key, title in ((axes[0], "broadcast", "site-wide broadcast: push → receipt"),
                           (axes[1], "personal", "personal pushes: stored → receipt")):
        for name, lat in latencies.get(key, {}).items():
            if lat:
                xs = sorted(x * 1000 for x in lat)
                ax.plot(xs, [(i + 1) / len(xs) for i in range(len(xs))], label=name)
        ax.set_xscale("log")
        ax.set_xlabel("ms (log)")
        ax.set_ylabel("fraction")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    ax = axes[2]
    t = result["storm"].pop("_timeline", [])
    ax.plot(t, range(1, len(t) + 1))
    ax.set_xlabel("s after every socket dropped")
    ax.set_ylabel("sockets synced again")
    ax.set_title(f"reconnect storm: {result['storm']['shed']} shed with 4503")
    ax.grid(True, alpha=0.3)
    fig.suptitle(f"fleet: P={result['procs']} daphne, N={result['n']} sockets, {result['redis']} Redis")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--procs", "-p", type=int, default=4, help="daphne processes (default 4)")
    ap.add_argument("--clients", "-n", type=int, default=4000, help="signed-in sockets (default 4000)")
    ap.add_argument("--redis", type=int, default=2, choices=[1, 2], help="Redis servers (default 2)")
    ap.add_argument("--client-procs", type=int, default=2)
    ap.add_argument("--broadcasts", type=int, default=10)
    ap.add_argument("--burst", type=int, default=10)
    ap.add_argument("--rate", type=float, default=2000, help="personal pushes per second (default 2000)")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--push-procs", type=int, default=3, help="sending processes (default 3)")
    ap.add_argument("--push-threads", type=int, default=4, help="threads per sending process (default 4)")
    ap.add_argument("--storm-jitter", type=float, default=2.0, help="clients come back within this many seconds")
    ap.add_argument("--storm-timeout", type=float, default=60.0)
    ap.add_argument("--max-pending", type=int, default=200, help="WS_MAX_PENDING_HANDSHAKES per process")
    ap.add_argument("--skip-raw", action="store_true")
    ap.add_argument("--skip", action="append", default=[], choices=["broadcast", "personal"],
                    help="leave a phase out (quicker storm and memory runs)")
    ap.add_argument("--profile", action="store_true",
                    help="py-spy record the first daphne process during the storm (bench/results/profile-fleet-storm.txt)")
    ap.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--daphne-arg", action="append", default=[],
                    help="extra daphne argument, e.g. --daphne-arg=--websocket_connect_timeout=30")
    ap.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                             "postgres://postgres@127.0.0.1:5432/mblog_bench"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--max-seconds", type=float, default=900, help="hard stop for the whole run")
    args = ap.parse_args(argv)
    args.backlog = 4096
    bench_run.DAPHNE_ARGS[:] = args.daphne_arg

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = Path(args.out) if args.out else RESULTS / f"fleet-P{args.procs}-N{args.clients}-R{args.redis}.json"
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    except Exception:  # noqa: BLE001
        pass
    timer = threading.Timer(args.max_seconds, lambda: (log("run exceeded --max-seconds; stopping"),
                                                       os.kill(os.getpid(), signal.SIGTERM)))
    timer.daemon = True
    timer.start()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    started = time.monotonic()
    redis = [Redis() for _ in range(args.redis)]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mblog.settings",
        "DATABASE_URL": args.database_url,
        "REDIS_URL": ",".join(r.url for r in redis),
        "CHANNEL_LAYER_PREFIX": f"mblogfleet{os.getpid()}",
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "bench-secret-key"),
        "DJANGO_DEBUG": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "WS_MAX_SOCKETS_PER_ADDRESS": "0",  # every benchmark client is 127.0.0.1
        "WS_MAX_PENDING_HANDSHAKES": str(args.max_pending),
        "PYTHONPATH": str(ROOT),
    }
    server_env = dict(item.split("=", 1) for item in args.server_env)
    servers, clients, users = [], None, []
    result: dict = {"procs": args.procs, "n": args.clients, "redis": args.redis, "cpus": os.cpu_count(),
                    "loadavg_at_start": os.getloadavg(), "argv": sys.argv[1:], "server_env": server_env,
                    "daphne_args": args.daphne_arg,
                    "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    latencies: dict = {"broadcast": {}, "personal": {}}
    try:
        setup_django(env)
        log(f"preparing {args.database_url.rsplit('/', 1)[1]} and {args.clients} users")
        users = prepare_database(args.database_url, args.clients)
        pg = Postgres(args.database_url)
        clients = Clients(args.client_procs)
        if not args.skip_raw:
            log(f"raw: one websockets process with all {args.clients} sockets")
            result["raw"] = phase_raw(args, clients)
            latencies["broadcast"]["raw, 1 process"] = result["raw"]["broadcast"].pop("_latencies")
        ports = [free_port() for _ in range(args.procs)]
        log(f"starting {args.procs} daphne processes on {args.redis} Redis server(s)")
        servers = [start_daphne(f"fleet-{i}", port, {**env, **server_env}, args.backlog) for i, port in enumerate(ports)]
        base_rss = sum(s.rss_kb() for s in servers)
        result["connect"] = spread_connect(clients, ports, users, max(1, args.max_pending // 2))
        time.sleep(2.0)
        open_now = clients.open_count()
        rss = sum(rss_kb(s.pid) for s in servers)
        result["memory"] = {"rss_before_kb": base_rss, "rss_after_kb": rss, "sockets": open_now,
                            "kb_per_socket": round((rss - base_rss) / open_now, 1) if open_now else None}
        log(f"  memory: {result['memory']['kb_per_socket']} kB per idle socket over {args.procs} processes")

        if "broadcast" not in args.skip:
            redis_cpu0, pg_cpu0 = [r.cpu_seconds() for r in redis], pg.cpu()
            result["broadcast"] = run_broadcasts(clients, open_now, args.broadcasts, args.burst)
            latencies["broadcast"][f"fleet, {args.procs} processes"] = result["broadcast"].pop("_latencies")
            deliveries = result["broadcast"]["deliveries"] + result["broadcast"]["burst"]["deliveries"]
            redis_cpu = sum(r.cpu_seconds() for r in redis) - sum(redis_cpu0)
            pg_cpu = cpu_delta(pg_cpu0, pg.cpu())
            result["cost_per_1000_deliveries"] = {
                "redis_cpu_ms": round(1e6 * redis_cpu / deliveries, 3) if deliveries else None,
                "postgres_cpu_ms": round(1e6 * pg_cpu / deliveries, 3) if deliveries else None,
            }
        if "personal" not in args.skip:
            result["personal"] = phase_personal(args, clients, users)
            latencies["personal"][f"{args.rate:g}/s"] = result["personal"].pop("_latencies")
        prof = Profiler(args.profile, servers[0], "fleet-storm", args.storm_timeout + 10)
        result["storm"] = phase_storm(args, clients, ports, users, pg, servers)
        prof.stop()
    finally:
        timer.cancel()
        if clients is not None:
            clients.quit()
        for s in servers:
            s.stop()
        for r in redis:
            r.stop()
        if users:
            drop_sessions(users)

    result["goals"] = goals(result)
    result["seconds"] = round(time.monotonic() - started, 1)
    out.write_text(json.dumps(result, indent=2))
    png = out.with_suffix(".png")
    chart(result, latencies, png)
    b, p, s = result.get("broadcast"), result.get("personal"), result["storm"]
    raw_b = (result.get("raw") or {}).get("broadcast", {})
    print(f"\nfleet: P={args.procs} daphne, N={args.clients} signed-in sockets, {args.redis} Redis")
    if b:
        print(f"  broadcast spread p50 {b['last_p50_ms']} ms (raw, one process: {raw_b.get('last_p50_ms')} ms), "
              f"push→receipt p99 {b['p99_ms']} ms, missing {b['missing']}, "
              f"burst {b['burst']['deliveries_per_s']} deliveries/s")
    if p:
        print(f"  personal: {p['rate_achieved']}/s, p99 {p['p99_ms']} ms, lost {p['lost']}")
    print(f"  memory: {result['memory']['kb_per_socket']} kB per idle socket")
    if "cost_per_1000_deliveries" in result:
        cost = result["cost_per_1000_deliveries"]
        print(f"  per 1,000 deliveries: Redis {cost['redis_cpu_ms']} ms CPU, PostgreSQL {cost['postgres_cpu_ms']} ms CPU")
    print(f"  storm: {s['synced']}/{s['sockets']} synced in {s['all_synced_s']} s, {s['shed']} shed, "
          f"{s['db_transactions_per_s']} db transactions/s, at most {s['db_connections_max']} db connections, "
          f"{s['processes_alive']}/{args.procs} processes alive")
    for goal, ok in result["goals"].items():
        print(f"  {'PASS' if ok else ('n/a ' if ok is None else 'FAIL')}  {goal}")
    print(f"\nwrote {out} and {png} ({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
