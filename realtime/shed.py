"""Load shedding for WebSocket handshakes: a process that cannot take more now says so.

A reconnect storm (a rolling restart gone wrong, a network blip) brings every client
back at once. Past WS_MAX_PENDING_HANDSHAKES handshakes in progress, or
WS_MAX_SOCKETS_PER_PROCESS open sockets, in this process, a new socket is accepted, sent
an `overloaded` error frame with `retry_after` (seconds) and closed with 4503 and the
reason "retry after N": the client waits about that long (with jitter) and tries again,
maybe on another process, instead of piling onto one that is already behind. 0 turns a
cap off. Outermost in the WebSocket stack, so a shed socket costs no session read.
"""

import json
import random

from django.conf import settings

from . import metrics

CLOSE_RETRY_AFTER = 4503  # 4000 + 503 Service Unavailable


class _Watched:
    """The send of one socket, noting when its handshake ends (accepted or refused).
    Holds the next send as real_send, so realtime.wire still finds daphne's connection."""

    __slots__ = ("real_send", "shed", "pending", "open")

    def __init__(self, real_send, shed: "LoadShedMiddleware") -> None:
        self.real_send, self.shed, self.pending, self.open = real_send, shed, True, False

    async def send(self, message) -> None:
        if self.pending and message["type"] in ("websocket.accept", "websocket.close"):
            self.pending = False
            self.shed.pending -= 1
            if message["type"] == "websocket.accept":
                self.open = True
                self.shed.open += 1
        await self.real_send(message)

    def done(self) -> None:
        if self.pending:
            self.pending = False
            self.shed.pending -= 1
        if self.open:
            self.open = False
            self.shed.open -= 1


class LoadShedMiddleware:
    def __init__(self, inner) -> None:
        self.inner = inner
        self.pending = 0  # handshakes in progress in this process
        self.open = 0  # sockets accepted and not yet finished

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.inner(scope, receive, send)
        max_pending, max_open = settings.WS_MAX_PENDING_HANDSHAKES, settings.WS_MAX_SOCKETS_PER_PROCESS
        if (max_pending and self.pending >= max_pending) or (max_open and self.open + self.pending >= max_open):
            return await self._shed(receive, send)
        self.pending += 1
        watched = _Watched(send, self)
        try:
            return await self.inner(scope, receive, watched.send)
        finally:
            watched.done()

    async def _shed(self, receive, send) -> None:
        metrics.CLOSES.labels("overloaded").inc()
        base = settings.WS_RETRY_AFTER_SECONDS
        retry_after = round(base * (0.5 + random.random()), 1)  # spread the comeback
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        frame = {"type": "error", "code": "overloaded", "detail": "the server is busy; try again shortly",
                 "retry_after": retry_after}
        await send({"type": "websocket.send", "text": json.dumps(frame, separators=(",", ":"))})
        await send({"type": "websocket.close", "code": CLOSE_RETRY_AFTER, "reason": f"retry after {retry_after}"})
