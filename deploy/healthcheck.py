#!/usr/bin/env python3
"""healthcheck.py [--host NAME] [--wait SECONDS] SOCKET...: GET /healthz from each daphne
process directly over its unix socket (not through nginx), exit 0 when every one answers
200. --wait retries each until it does or the time is up (used between the steps of
mblog-rolling-restart; also fit for monitoring or a cron check); with --pid, it stops
waiting as soon as that process is gone (a daphne that dies while starting, e.g. a
release whose code cannot load, is not waited for; supervisor's startsecs cannot tell
on a busy machine where Django takes longer than that to load).

healthcheck.py --watch SECONDS --restart 'COMMAND {n}' 'RUN_DIR/daphne-*.sock': every
SECONDS, check each socket the pattern matches now (so scaling needs no change here); a
process that took the connection but has not answered within --timeout, --failures
times in a row, is hung: run COMMAND with {n} its number (the supervisor file runs this
watcher with `supervisorctl signal KILL mblog-daphne-{n}`; autorestart starts it again).
A refused connection is a process that is down or draining, which the process manager
handles: it is not counted. Standard library only.
"""

import argparse
import glob
import http.client
import os
import re
import shlex
import socket
import subprocess
import sys
import time


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def check(path: str, host: str, timeout: float = 5) -> tuple[int, str]:
    conn = UnixHTTPConnection(path, timeout)
    try:
        conn.request("GET", "/healthz", headers={"Host": host, "X-Forwarded-Proto": "https"})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    except OSError as exc:
        return 0, f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def watch(args) -> int:
    hung: dict[str, int] = {}
    while True:
        for path in sorted(glob.glob(args.sockets[0])):
            status, body = check(path, args.host, timeout=args.timeout)
            hung[path] = hung.get(path, 0) + 1 if body.startswith(("TimeoutError", "timeout")) else 0
            if hung[path] >= args.failures:
                n = re.search(r"(\d+)\D*$", path).group(1)
                command = args.restart.replace("{n}", n)
                print(f"healthcheck: {path} hung ({hung[path]} checks without an answer in {args.timeout:g}s): {command}",
                      flush=True)
                subprocess.run(shlex.split(command), check=False)
                hung[path] = 0
        time.sleep(args.watch)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="localhost", help="Host header: a name in DJANGO_ALLOWED_HOSTS")
    parser.add_argument("--wait", type=float, default=0, help="retry each socket for up to this many seconds")
    parser.add_argument("--pid", type=int, help="with --wait and one socket: stop waiting when this process is gone")
    parser.add_argument("--watch", type=float, help="check every this many seconds, forever (with --restart)")
    parser.add_argument("--restart", help="command for a hung process, {n} its number")
    parser.add_argument("--timeout", type=float, default=5, help="seconds to answer (--watch)")
    parser.add_argument("--failures", type=int, default=3, help="unanswered checks in a row that mean hung (--watch)")
    parser.add_argument("sockets", nargs="+")
    args = parser.parse_args(argv)
    if args.watch:
        if not args.restart or len(args.sockets) != 1:
            parser.error("--watch needs --restart and one socket pattern")
        return watch(args)
    ok = True
    for path in args.sockets:
        deadline = time.monotonic() + args.wait
        while True:
            status, body = check(path, args.host)
            if status == 200 or time.monotonic() >= deadline:
                break
            if args.pid and not alive(args.pid):
                body = f"process {args.pid} exited while starting"
                break
            time.sleep(0.2)
        print(f"{path}: {status or 'unreachable'} {body.strip()[:200]}")
        ok = ok and status == 200
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
