"""Memory per idle signed-in socket in one daphne process, and where it goes.

One daphne process (the site, `bench/stock_asgi.py`) on its own redis-server and the
benchmark database; N signed-in `/ws/inform/` sockets opened --batch at a time; RSS after
(2 s idle) minus RSS before (after one warm-up socket), per socket. With --tracemalloc the
server runs under `PYTHONTRACEMALLOC` and dumps a snapshot before and after
(`bench/memory_hook.py`, on SIGUSR1), and the run prints the largest differences per
line, per socket.

    .venv/bin/python bench/memory.py -n 2000
    .venv/bin/python bench/memory.py -n 2000 --tracemalloc --top 40
"""

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fleet import Redis  # noqa: E402
from bench.run import (  # noqa: E402
    RESULTS,
    Clients,
    Server,
    drop_sessions,
    free_port,
    log,
    prepare_database,
    setup_django,
    start_daphne,
)


def snapshot(server: Server, path: Path) -> tracemalloc.Snapshot:
    """The server's k-th snapshot (bench/memory_hook.py), path = <MBLOG_MEMORY_DUMP>.<k>."""
    os.kill(server.pid, signal.SIGUSR1)
    done = Path(f"{path}.done")
    deadline = time.monotonic() + 120
    while not done.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the server wrote no snapshot")
        time.sleep(0.2)
    return tracemalloc.Snapshot.load(str(path))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", "-n", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--client-procs", type=int, default=2)
    ap.add_argument("--tracemalloc", action="store_true", help="diff the server's Python allocations")
    ap.add_argument("--frames", type=int, default=1, help="traceback depth kept by tracemalloc")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--group", choices=["lineno", "filename", "traceback"], default="lineno")
    ap.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                             "postgres://postgres@127.0.0.1:5432/mblog_bench"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--max-seconds", type=float, default=400)
    args = ap.parse_args(argv)

    timer = threading.Timer(args.max_seconds, lambda: os.kill(os.getpid(), signal.SIGTERM))
    timer.daemon = True
    timer.start()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    except Exception:  # noqa: BLE001
        pass
    RESULTS.mkdir(parents=True, exist_ok=True)
    dumps = Path(tempfile.mkdtemp(prefix="mblog-memory-"))
    redis = Redis()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mblog.settings",
        "DATABASE_URL": args.database_url,
        "REDIS_URL": redis.url,
        "CHANNEL_LAYER_PREFIX": f"mblogmem{os.getpid()}",
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "bench-secret-key"),
        "DJANGO_DEBUG": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "WS_MAX_SOCKETS_PER_ADDRESS": "0",
        "PYTHONPATH": str(ROOT),
        "MBLOG_MEMORY_DUMP": str(dumps / "snap"),
    }
    if args.tracemalloc:
        env["PYTHONTRACEMALLOC"] = str(args.frames)
    result = {"n": args.clients, "batch": args.batch, "tracemalloc": args.tracemalloc,
              "loadavg_at_start": os.getloadavg(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    server = clients = None
    users: list = []
    try:
        setup_django(env)
        users = prepare_database(args.database_url, args.clients + 1)
        clients = Clients(args.client_procs)
        port = free_port()
        server = start_daphne("memory", port, {**env, "DJANGO_SETTINGS_MODULE": "mblog.settings"}, 4096)
        # Warm up: one signed-in socket, so that everything is imported and set up (what
        # that costs once per process is reported apart: bench/fleet.py counts it).
        rss_start = server.rss_kb()
        clients.connect(port, "/ws/inform/", [users[-1][1]])
        time.sleep(0.5)
        clients.close()
        time.sleep(0.5)
        before = snapshot(server, dumps / "snap.1") if args.tracemalloc else None
        rss0 = server.rss_kb()
        cookies = [cookie for _, cookie in users[: args.clients]]
        for i in range(0, len(cookies), args.batch):
            clients.connect(port, "/ws/inform/", cookies[i : i + args.batch], timeout=60)
        time.sleep(2.0)
        rss1 = server.rss_kb()
        n = clients.open_count()
        result["memory"] = {"rss_at_start_kb": rss_start, "rss_before_kb": rss0, "rss_after_kb": rss1, "sockets": n,
                            "kb_per_socket": round((rss1 - rss0) / n, 2) if n else None}
        log(f"RSS {rss_start} kB at start, {rss0} kB after one socket, {rss1} kB over {n} signed-in sockets: "
            f"{result['memory']['kb_per_socket']} kB per socket")
        if args.tracemalloc and n:
            after = snapshot(server, dumps / "snap.2")
            diff = after.compare_to(before, args.group)
            total = sum(d.size_diff for d in diff)
            result["tracemalloc_kb_per_socket"] = round(total / n / 1024, 2)
            log(f"Python allocations (tracemalloc): {total / n / 1024:.2f} kB per socket")
            top = []
            for d in diff[: args.top]:
                where = "\n      ".join(str(f) for f in d.traceback.format()[-2 * args.frames :: 2]) or "?"
                where = d.traceback.format()[-1::-2] if args.group == "traceback" else where
                top.append({"where": str(where), "bytes_per_socket": round(d.size_diff / n),
                            "blocks_per_socket": round(d.count_diff / n, 2)})
                print(f"{d.size_diff / n:8.0f} B {d.count_diff / n:6.2f} blk  {where}")
            result["top"] = top
    finally:
        timer.cancel()
        if clients is not None:
            clients.quit()
        if server is not None:
            server.stop()
        redis.stop()
        shutil.rmtree(dumps, ignore_errors=True)
        if users:
            drop_sessions(users)
    out = Path(args.out) if args.out else RESULTS / f"memory-N{args.clients}.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result["memory"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
