"""Hold N keep-alive HTTP connections to nginx at once (a helper process of
tests/test_deploy.py): python -m tests.holdsockets PORT HOST N PATH STATUS

Each connection gets one GET PATH and must answer STATUS; all stay open. Prints
"opened <count of 200s> <errors>", then on a line on stdin, "open <count still open>"
(a connection nginx closed reads as EOF), and exits closing them all."""

import http.client
import resource
import select
import sys


def main(port: int, host: str, n: int, path: str, status: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (n + 100, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    conns, errors = [], []
    for _ in range(n):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", path, headers={"Host": host})
            response = conn.getresponse()
            response.read()
            if response.status == status and not response.will_close:
                conns.append(conn)
            else:
                errors.append(str(response.status))
        except OSError as exc:
            errors.append(repr(exc)[:100])
    print("opened", len(conns), "errors", errors[:5], flush=True)
    sys.stdin.readline()
    poller = select.poll()
    for conn in conns:
        poller.register(conn.sock.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
    closed = {fd for fd, _ in poller.poll(0)}
    print("open", len(conns) - len(closed), flush=True)
    for conn in conns:
        conn.close()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
