"""The base of every socket consumer: rate limit, size limit, error frames, the hub's
delivery path, and cleanup on every way out."""

import asyncio
import logging
import time

from channels.consumer import get_handler_name
from channels.exceptions import DenyConnection, StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from . import frames, metrics, sessions, wire
from .hub import get_hub

log = logging.getLogger(__name__)

# Close codes: 4000 + the HTTP status that means the same.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_BACKLOG = 4413  # the client read too slowly; reconnect and resume
CLOSE_ABUSE = 4429  # too many bad or excess frames
CLOSE_SESSION_ENDED = 4001  # signed out, password changed or deactivated

# A client that earns this many errors in a row without one good frame is closed.
ABUSE_LIMIT = 50
# How long a long answer waits for a slow reader between pages, and how often it looks.
DRAIN_TIMEOUT = 10.0
DRAIN_POLL = 0.02


class TokenBucket:
    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class GuardedConsumer(AsyncWebsocketConsumer):
    """Subclasses set client_schema and implement connect(), handle_frame(frame) and
    disconnect(code); disconnect() runs exactly once, however the socket ends (a
    consumer that raises would otherwise leave its groups, tasks and presence behind)."""

    client_schema = None
    # Defaults on the class: an idle socket's __dict__ holds only what differs.
    _dropped = False
    strikes = 0
    _auth_groups: tuple[str, ...] = ()

    async def __call__(self, scope, receive, send):
        # AsyncConsumer.__call__ without a layer channel per socket (the process hub receives
        # for every socket) and without await_many_dispatch's second task per socket.
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        self._receive = receive  # under daphne, replaced at connect (wire.trim_after_handshake)
        receive = None
        self.close_code = 1011  # if we leave by an exception
        try:
            while True:
                await self.dispatch(await self._receive())
        except StopConsumer:
            pass
        finally:
            await self._disconnect_once()

    async def _disconnect_once(self) -> None:
        if getattr(self, "_disconnected", True):
            return  # never connected, or already cleaned up
        self._disconnected = True
        metrics.socket_closed(self.session is not None)
        try:
            await self.disconnect(self.close_code)
        except Exception:
            log.exception("disconnect of %s failed", type(self).__name__)
        if self._auth_groups:
            await get_hub().leave(self, self._auth_groups)

    async def dispatch(self, message):
        # Channels >= 4.2 hops to a worker thread (close_old_connections) before every
        # handler; ours reach the database only through database_sync_to_async, which
        # closes old connections itself, so skip the hop.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        await handler(message)

    async def websocket_connect(self, message):
        # Found at connect rather than on the first delivery: a broadcast right after a
        # connection storm would otherwise allocate for every socket mid-fan-out.
        self._protocol = wire.daphne_protocol(self.base_send)
        self.bucket = TokenBucket(settings.WS_RATE_PER_SECOND, settings.WS_RATE_BURST)
        self._disconnected = False
        user = self.scope.get("user")
        key = self.scope.get("auth_key") or self.scope.get("cookies", {}).get(settings.SESSION_COOKIE_NAME)
        self.session = sessions.session_tag(key) if (user is not None and user.is_authenticated) else None
        metrics.socket_opened(self.session is not None)
        try:
            if self.session is not None:
                # Before connect(): a sign-out racing the handshake still finds this socket.
                await get_hub().join(self, [sessions.auth_group(user.pk)])
                self._auth_groups = (sessions.auth_group(user.pk),)
            await self.connect()
        except DenyConnection:
            await self.close()
        if self._protocol is not None:
            self._receive = wire.trim_after_handshake(self._protocol, self._receive)

    async def end_session(self) -> None:
        """The session this socket was opened with has ended (signed out elsewhere too)."""
        await self.send_frame(frames.error_frame("unauthenticated", "your session has ended; sign in again"))
        await self.close(code=CLOSE_SESSION_ENDED)

    async def websocket_disconnect(self, message):
        self.close_code = message["code"]
        raise StopConsumer()

    async def receive(self, text_data=None, bytes_data=None):
        if not self.bucket.take():
            return await self.reject("rate_limited", "too many frames; slow down")
        if text_data is not None and len(text_data) > settings.WS_MAX_FRAME_CHARS:
            return await self.reject("too_large", f"frames are at most {settings.WS_MAX_FRAME_CHARS} characters")
        try:
            frame = frames.parse_client_frame(text_data, self.client_schema)
        except frames.BadFrame as exc:
            return await self.reject("bad_request", str(exc))
        self.strikes = 0
        try:
            await self.handle_frame(frame)
        except Exception:  # a bug must not cost the client its socket
            log.exception("frame %r failed", frame.get("type"))
            await self.send_frame(frames.error_frame("internal", "the server could not handle that frame"))

    async def reject(self, code: str, detail: str) -> None:
        self.strikes += 1
        metrics.REJECTED_FRAMES.labels(code).inc()
        if self.strikes > ABUSE_LIMIT:
            if self.strikes == ABUSE_LIMIT + 1:  # frames already on their way strike again
                metrics.CLOSES.labels("abuse").inc()
            await self.close(code=CLOSE_ABUSE)
            return
        await self.send_frame(frames.error_frame(code, detail))

    async def send_frame(self, frame: dict) -> None:
        await self.send(text_data=frames.dumps(frame))
        self._bound_backlog()

    async def deliver(self, message: dict, frame: dict) -> None:
        """Called by the hub with a pre-built ASGI message (realtime.wire.PreparedSend)."""
        protocol = self._protocol
        if protocol is not None and isinstance(message, wire.PreparedSend):
            wire.send_prepared(protocol, message)  # under daphne: framed once, written to the connection
        else:
            await self.base_send(message)
        self._bound_backlog()

    def _bound_backlog(self) -> None:
        """A peer that stops reading would make the server queue without bound: past
        WS_MAX_BACKLOG_BYTES its socket is dropped (close code 4413); it resumes on reconnect."""
        protocol = self._protocol
        if protocol is None or self._dropped:
            return
        if wire.backlog_bytes(protocol) > settings.WS_MAX_BACKLOG_BYTES:
            self._dropped = True
            metrics.CLOSES.labels("backlog").inc()
            log.warning("dropping a socket that stopped reading (%d bytes queued)", wire.backlog_bytes(protocol))
            wire.drop(protocol, CLOSE_BACKLOG, "too much unread; reconnect and resume")

    async def drained(self) -> bool:
        """Wait until the peer has taken at least half the backlog bound (between pages
        of a long answer); False when the socket was dropped or stays full."""
        protocol = self._protocol
        if protocol is None:
            return True
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while not self._dropped and wire.backlog_bytes(protocol) > settings.WS_MAX_BACKLOG_BYTES // 2:
            if time.monotonic() > deadline:
                self._dropped = True
                metrics.CLOSES.labels("backlog").inc()
                wire.drop(protocol, CLOSE_BACKLOG, "too much unread; reconnect and resume")
                break
            await asyncio.sleep(DRAIN_POLL)
        return not self._dropped
