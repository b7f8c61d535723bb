#!/usr/bin/env python3
"""healthcheck.py [--host NAME] [--wait SECONDS] SOCKET...: GET /healthz from each daphne
process directly over its unix socket (not through nginx), exit 0 when every one answers
200. --wait retries each until it does or the time is up (used between the steps of
mblog-rolling-restart; also fit for monitoring or a cron check). Standard library only.
"""

import argparse
import http.client
import socket
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="localhost", help="Host header: a name in DJANGO_ALLOWED_HOSTS")
    parser.add_argument("--wait", type=float, default=0, help="retry each socket for up to this many seconds")
    parser.add_argument("sockets", nargs="+")
    args = parser.parse_args(argv)
    ok = True
    for path in args.sockets:
        deadline = time.monotonic() + args.wait
        while True:
            status, body = check(path, args.host)
            if status == 200 or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        print(f"{path}: {status or 'unreachable'} {body.strip()[:200]}")
        ok = ok and status == 200
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
