"""Load shedding for WebSocket handshakes: a process that cannot take more now says so.

A reconnect storm (a rolling restart gone wrong, a network blip) brings every client
back at once. Past WS_MAX_PENDING_HANDSHAKES handshakes in progress, or
WS_MAX_SOCKETS_PER_PROCESS open sockets, in this process, a new socket is accepted, sent
an `overloaded` error frame with `retry_after` (seconds) and closed with 4503 and the
reason "retry after N": the client waits about that long (with jitter) and tries again,
maybe on another process, instead of piling onto one that is already behind. 0 turns a
cap off. Outermost in the WebSocket stack, so a shed socket costs no session read.

A shed socket costs a process almost a whole handshake, and a fixed retry_after sends a
whole storm back together, to be shed again (measured: 4-6 sheds per socket in a storm of
2,000, docs/scaling.md). So retry_after paces the comeback: each shed socket gets the
next free slot at the rate this process has been accepting sockets, never sooner than
about WS_RETRY_AFTER_SECONDS.

A fixed cap on handshakes in progress is also wrong for a process that is short of CPU:
past daphne's 5 s handshake timeouts the work already done on a handshake is lost and
the client tries again at once (measured: most attempts of a storm on a loaded machine).
While handshakes take longer than HANDSHAKE_TARGET_SECONDS, the cap is what the process
finishes in that time (Little's law: accept rate x target), never below MIN_PENDING.
And under daphne the process accepts from its listening port only as many connections
as it may start handshakes now (the cap, less the handshakes in progress and the
connections accepted that have not reached this middleware yet), and stops reading the
port while there is no room: new connections wait in the kernel's listen queue, where
waiting costs nothing and no handshake timer runs, instead of being accepted to be shed
or to time out (measured: most failed attempts were autobahn's 5 s handshake timeout, a
reset; and Twisted, left to itself, accepts 100 or more waiting connections at once, of
which all past the cap were shed: 2.7 sheds per socket in a storm of 16,000). Wrap the
whole application (HTTP too): every request that reaches it has arrived.
"""

import asyncio
import json
import random
import time

from django.conf import settings

from . import metrics, wire

CLOSE_RETRY_AFTER = 4503  # 4000 + 503 Service Unavailable
HANDSHAKE_TARGET_SECONDS = 1.0
MIN_PENDING = 8
PAUSE_SECONDS = 1.0
# A connection accepted from the listening port reaches the application within this, or it
# has gone (a client that gave up while waiting in the queue): then it is not waited for.
ARRIVAL_SECONDS = 0.5


class _Watched:
    """The send of one socket, noting when its handshake ends (accepted or refused).
    Holds the next send as real_send, so realtime.wire still finds daphne's connection."""

    __slots__ = ("real_send", "shed", "pending", "open", "started")

    def __init__(self, real_send, shed: "LoadShedMiddleware") -> None:
        self.real_send, self.shed, self.pending, self.open = real_send, shed, True, False
        self.started = time.monotonic()

    async def send(self, message) -> None:
        if self.pending and message["type"] in ("websocket.accept", "websocket.close"):
            self.pending = False
            self.shed.pending -= 1
            self.shed.resume()
            if message["type"] == "websocket.accept":
                self.open = True
                self.shed.open += 1
                self.shed.pace.accepted(time.monotonic() - self.started)
        await self.real_send(message)

    def done(self) -> None:
        if self.pending:
            self.pending = False
            self.shed.pending -= 1
            self.shed.resume()
        if self.open:
            self.open = False
            self.shed.open -= 1


class _Pace:
    """The rate this process accepts sockets at (over the last second or so), and the
    next free time to send a shed socket back to."""

    __slots__ = ("count", "since", "rate", "next_slot", "latency")

    def __init__(self) -> None:
        self.count, self.since, self.rate, self.next_slot = 0, time.monotonic(), 0.0, 0.0
        self.latency = 0.0  # seconds from the handshake's start to its accept, smoothed

    def accepted(self, latency: float) -> None:
        self.count += 1
        self.latency += 0.1 * (latency - self.latency)

    def pending_cap(self, configured: int) -> int:
        """configured while handshakes are quick, else what is finished in the target time."""
        if self.latency <= HANDSHAKE_TARGET_SECONDS:
            return configured
        rate = self._rate(time.monotonic(), 0.0)
        return min(configured, max(MIN_PENDING, int(rate * HANDSHAKE_TARGET_SECONDS)))

    def _rate(self, now: float, floor: float) -> float:
        elapsed = now - self.since
        if elapsed >= 1.0:
            self.rate, self.count, self.since = self.count / elapsed, 0, now
            elapsed = 0.0
        current = self.count / elapsed if elapsed >= 0.25 else 0.0
        # What was measured, however low (a slow process must not call clients back
        # sooner than it can take them); floor only before anything was measured.
        return max(self.rate, current) or floor

    def retry_after(self, base: float, floor: float) -> float:
        """base (already jittered) if nobody is waiting for a slot, else the next one."""
        now = time.monotonic()
        self.next_slot = max(self.next_slot + 1.0 / self._rate(now, floor), now + base)
        return round(self.next_slot - now, 1)


class LoadShedMiddleware:
    """Outermost, around HTTP too: it paces what the process accepts from its listening
    port, and every connection that reaches the application has arrived. Its steps are
    also used on their own, by an application that runs the WebSocket checks in one
    coroutine (mblog.asgi, mblog.ws_stack): arrived() for every connection, admit() at a
    handshake's start and, for a socket it admits, done() on its send when it ends."""

    def __init__(self, inner=None) -> None:
        self.inner = inner
        self.pending = 0  # handshakes in progress in this process
        self.open = 0  # sockets accepted and not yet finished
        self.pace = _Pace()
        self.cap = 0  # the in-progress cap last applied (0: none)
        self.arriving = 0  # connections accepted from the port, not here yet
        self.arrive_by = 0.0  # ...and when they should have come
        self.gated: set = set()  # listening ports that accept through self._room
        self.paused: set = set()  # listening ports not accepting now
        self.pauses = 0  # pauses so far (each has its own PAUSE_SECONDS bound)
        self.ran_out = False  # a pause lasted PAUSE_SECONDS: accept a few anyway

    async def __call__(self, scope, receive, send):
        self.arrived(send)
        if scope["type"] != "websocket":
            return await self.inner(scope, receive, send)
        watched = self.admit(send)
        if watched is None:
            return await self.turn_away(receive, send)
        try:
            return await self.inner(scope, receive, watched.send)
        finally:
            watched.done()

    def arrived(self, send) -> None:
        """A connection (HTTP or WebSocket) reached the application."""
        if self.arriving:
            self.arriving -= 1
            self.resume()  # the port asks again (for a handshake, after pending counts it)
        if settings.WS_MAX_PENDING_HANDSHAKES:
            self._gate(send)  # from the first connection on (a health check, say)

    def admit(self, send) -> "_Watched | None":
        """A new handshake: the send to use for it (its done() must be called when the
        socket ends), or None when the process is over a cap (then turn_away())."""
        max_pending, max_open = settings.WS_MAX_PENDING_HANDSHAKES, settings.WS_MAX_SOCKETS_PER_PROCESS
        if max_pending and self.pending >= MIN_PENDING:
            max_pending = self.pace.pending_cap(max_pending)
        self.cap = max_pending
        if (max_pending and self.pending >= max_pending) or (max_open and self.open + self.pending >= max_open):
            return None
        self.pending += 1
        return _Watched(send, self)

    def _gate(self, send) -> None:
        port = wire.listening_port(send)
        if port is not None and port not in self.gated:
            self.gated.add(port)
            wire.gate_accepts(port, self._room, self._accepted)

    def _room(self, port) -> int:
        """How many connections the port may accept now; with none, it stops reading."""
        cap = self.cap or settings.WS_MAX_PENDING_HANDSHAKES
        if not cap:
            return 1 << 30
        if self.ran_out:  # handshakes stuck for PAUSE_SECONDS: take a few (HTTP must be served)
            self.ran_out = False
            return MIN_PENDING
        if self.arriving and time.monotonic() > self.arrive_by:
            self.arriving = 0
        room = cap - self.pending - self.arriving
        if room <= 0:
            self._pause(port)
        return room

    def _accepted(self, count: int) -> None:
        if count:
            self.arriving += count
            self.arrive_by = time.monotonic() + ARRIVAL_SECONDS

    def _pause(self, port) -> None:
        if port not in self.paused:
            port.stopReading()
            if not self.paused:
                # Never longer than PAUSE_SECONDS at a time, whatever the handshakes in
                # progress do (one stuck must not stop the process accepting for good).
                self.pauses += 1
                asyncio.get_running_loop().call_later(PAUSE_SECONDS, self._ran_out, self.pauses)
            self.paused.add(port)

    def _ran_out(self, pause: int) -> None:
        if self.paused and pause == self.pauses:  # the same pause all along
            self.ran_out = True
            self._resume_all()

    def _resume_all(self) -> None:
        for port in self.paused:
            port.startReading()
        self.paused.clear()

    def resume(self) -> None:
        if self.paused and (not self.cap or self.pending + self.arriving < self.cap):
            self._resume_all()

    async def turn_away(self, receive, send) -> None:
        """Accept, say when to come back, close with 4503."""
        metrics.CLOSES.labels("overloaded").inc()
        base = settings.WS_RETRY_AFTER_SECONDS
        # Before the first second of accepts is measured: as many as may be in progress, per base.
        floor = max(settings.WS_MAX_PENDING_HANDSHAKES, 1) / max(base, 0.1)
        retry_after = self.pace.retry_after(base * (0.5 + random.random()), floor)
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        frame = {"type": "error", "code": "overloaded", "detail": "the server is busy; try again shortly",
                 "retry_after": retry_after}
        await send({"type": "websocket.send", "text": json.dumps(frame, separators=(",", ":"))})
        await send({"type": "websocket.close", "code": CLOSE_RETRY_AFTER, "reason": f"retry after {retry_after}"})
