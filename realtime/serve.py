"""daphne that drains on SIGTERM: `python -m realtime.serve [daphne's arguments]`.

Plain daphne stops on SIGTERM by dropping every socket at once, without a close frame
(browsers see 1006), while nginx may still be sending it requests. Here SIGTERM (the
stop signal of supervisor and systemd) drains the process instead:

1. New connections are refused: a unix socket's path is swapped for a socket that is
   bound but never listens, so nginx gets "connection refused" at once and passes the
   request to another process (a missing path would be logged as [crit]). Connections
   already queued on the old socket are still accepted and answered.
2. Every WebSocket is closed with 1001 "going away", spread evenly over DRAIN_SECONDS
   (environment, default 5): the clients reconnect to the other processes and `sync`,
   a few at a time rather than all in the same instant.
3. When no HTTP request is in flight any more (at most 10 s after that), daphne stops.

A second SIGTERM stops at once. The refusing socket stays at the path until the next
daphne takes it over: Twisted's lock file still names this process, so the next one
finds it stale and replaces the socket.

Running out of open files (every socket is one) is logged as an ERROR with the limit:
daphne sends Twisted's own log, which says so, nowhere.
"""

import logging
import os
import resource
import signal
import socket
import time

from daphne.cli import CommandLineInterface
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import reactor
from twisted.internet.unix import Port as UnixPort
from twisted.logger import globalLogPublisher

logger = logging.getLogger("realtime.serve")

GOING_AWAY = 1001
IN_FLIGHT_GRACE = 10


def refuse_at(path: str) -> None:
    """Put a bound, never-listening socket at path: connects to it fail with ECONNREFUSED."""
    refusing = path + ".refusing"
    if os.path.exists(refusing):
        os.unlink(refusing)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(refusing)
        os.chmod(refusing, os.stat(path).st_mode & 0o777)
        os.rename(refusing, path)
    finally:
        sock.close()  # the file stays, and refuses


def open_file_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def report_file_exhaustion(event: dict) -> None:
    """A Twisted log observer: accept() failing with EMFILE means new sockets are refused."""
    if str(event.get("log_format", "")).startswith("EMFILE encountered"):
        logger.error("open-file limit reached (%d files): new connections are refused; "
                     "raise minfds / LimitNOFILE (deploy/values.example MAX_OPEN_FILES)", open_file_limit())


class DrainingServer(Server):
    def run(self):
        self.ports = []
        self.draining_since = None
        logger.info("open-file limit: %d (one per socket)", open_file_limit())
        globalLogPublisher.addObserver(report_file_exhaustion)
        reactor.callWhenRunning(self.install_drain)
        super().run()

    def listen_success(self, port):
        self.ports.append(port)
        return super().listen_success(port)

    def install_drain(self):
        # after Twisted's own handlers (installed during startup), so this one wins
        signal.signal(signal.SIGTERM, lambda *_: reactor.callFromThread(self.drain))

    def open_websockets(self):
        return [
            p for p, details in self.connections.items()
            if isinstance(p, WebSocketProtocol) and "disconnected" not in details and p.state == p.STATE_OPEN
        ]

    def drain(self):
        if self.draining_since is not None:
            logger.warning("drain: second SIGTERM, stopping now")
            self.stop()
            return
        self.draining_since = time.monotonic()
        for port in self.ports:
            if isinstance(port, UnixPort):
                path = port.getHost().name
                refuse_at(path.decode() if isinstance(path, bytes) else path)
            else:
                port.stopListening()
        seconds = float(os.environ.get("DRAIN_SECONDS", "5"))
        sockets = self.open_websockets()
        logger.info("drain: refusing new connections; closing %d WebSockets with %d over %gs",
                    len(sockets), GOING_AWAY, seconds, extra={"sockets": len(sockets)})
        for k, proto in enumerate(sockets):
            reactor.callLater(seconds * k / len(sockets), self.going_away, proto)
        self.drain_deadline = time.monotonic() + seconds + IN_FLIGHT_GRACE
        reactor.callLater(seconds, self.stop_when_idle)

    def going_away(self, proto):
        if proto.state == proto.STATE_OPEN:
            # autobahn's sendClose() allows applications 1000 and 3000-4999 only; 1001 is
            # the server's own code, sent the way autobahn sends its protocol closes
            proto.sendCloseFrame(code=GOING_AWAY, reasonUtf8=b"going away, reconnect", isReply=False)

    def stop_when_idle(self):
        for proto in self.open_websockets():  # accepted from the queue after the drain began
            self.going_away(proto)
        busy = [p for p, details in self.connections.items() if "disconnected" not in details]
        if busy and time.monotonic() < self.drain_deadline:
            reactor.callLater(0.1, self.stop_when_idle)
            return
        for port in self.ports:
            # not stopListening(): that would unlink the path, now the refusing socket's
            port.stopReading()
        logger.info("drain: done in %.1fs (%d connections left), stopping",
                    time.monotonic() - self.draining_since, len(busy))
        self.stop()


class DrainingCommandLine(CommandLineInterface):
    server_class = DrainingServer


if __name__ == "__main__":
    DrainingCommandLine.entrypoint()
