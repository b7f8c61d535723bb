"""/ws/inform/: one socket per browser tab. Thin: authenticate, join the hub, decode a
frame, call a service, forward what the hub delivers."""

import logging
import time
from datetime import timedelta

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import DenyConnection, StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from . import frames, push, selectors, services, wire
from .hub import get_hub

log = logging.getLogger(__name__)

SYNC_BATCH = 200
# A client that earns this many errors in a row without one good frame is closed.
ABUSE_LIMIT = 50
CLOSE_ABUSE = 4408
# Rows are stamped when inserted but announced when committed: look back this far.
CATCH_UP_MARGIN = timedelta(minutes=1)


class TokenBucket:
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
    """Rate limit, size limit and error frames shared by /ws/inform/ and /ws/chat/."""

    async def __call__(self, scope, receive, send):
        # AsyncConsumer.__call__ without a layer channel per socket (the process hub receives
        # for every socket) and so without await_many_dispatch, which keeps a second task
        # (and asyncio.wait's waiter) per socket for the one source there is to wait on; an
        # idle socket costs that much less memory (docs/performance.md).
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    async def dispatch(self, message):
        # Channels >= 4.2 hops to a worker thread (close_old_connections) before every
        # handler, connects and disconnects included: in a connection storm all of those
        # queue on one thread. Our handlers reach the database only through
        # database_sync_to_async, which closes old connections itself, so skip the hop.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        await handler(message)

    async def websocket_connect(self, message):
        # Found now rather than on the first delivery: a broadcast right after a connection
        # storm would otherwise allocate for every socket in the middle of its fan-out.
        self._direct_send = wire.direct_sender(self.base_send)
        self.bucket = TokenBucket(settings.WS_RATE_PER_SECOND, settings.WS_RATE_BURST)
        self.strikes = 0
        try:
            await self.connect()
        except DenyConnection:
            await self.close()

    async def websocket_disconnect(self, message):
        # The base class would discard layer groups (we have none) and hop to a thread.
        await self.disconnect(message["code"])
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
        if self.strikes > ABUSE_LIMIT:
            await self.close(code=CLOSE_ABUSE)
            return
        await self.send_frame(frames.error_frame(code, detail))

    async def send_frame(self, frame: dict) -> None:
        await self.send(text_data=frames.dumps(frame))

    async def deliver(self, message: dict, frame: dict) -> None:
        """Called by the hub with a pre-built ASGI message (inform.wire.PreparedSend)."""
        direct = self._direct_send
        if direct is not None and isinstance(message, wire.PreparedSend):
            direct(message)  # under daphne: the frame framed once, written to the connection
        else:
            await self.base_send(message)


class InformConsumer(GuardedConsumer):
    client_schema = frames.CLIENT_FRAME

    async def connect(self):
        self.user = self.scope["user"]
        self.is_signed_in = self.user.is_authenticated
        self.hub_groups = [push.SITE_GROUP]
        self.joined = False
        self.cursor = 0  # highest id this socket has been sent; 0: none yet
        self.opened_at = timezone.now()
        if self.is_signed_in:
            self.hub_groups.append(push.user_group(self.user.pk))
        try:
            await get_hub().join(self, self.hub_groups)
        except Exception as exc:
            log.warning("inform socket could not join its groups: %s", exc)
            await self.accept()
            await self.send_frame(frames.error_frame("unavailable", "live updates are unavailable; retry soon"))
            await self.close(code=1011)
            return
        self.joined = True
        await self.accept()

    async def disconnect(self, code):
        if self.joined:
            await get_hub().leave(self, self.hub_groups)

    async def deliver(self, message: dict, frame: dict) -> None:
        if frame.get("type") == "inform" and frame["id"] > self.cursor:
            self.cursor = frame["id"]
        await super().deliver(message, frame)

    async def handle_frame(self, frame: dict) -> None:
        if not self.is_signed_in:
            return await self.send_frame(
                frames.error_frame("unauthenticated", "sign in to sync or read notifications")
            )
        kind = frame["type"]
        if kind == "sync":
            await self.send_stream_after(frame["after"])
        elif kind == "read":
            try:
                await database_sync_to_async(services.notifications_mark_read)(self.user, frame["ids"])
            except services.InformError as exc:
                await self.send_frame(frames.error_frame("not_found", str(exc)))
        elif kind == "read_all":
            await database_sync_to_async(services.notifications_mark_all_read)(self.user)

    async def send_stream_after(self, after: int) -> None:
        """Every stored notification with id > after, oldest first, then the unread count."""
        while True:
            batch, unread = await database_sync_to_async(self._read_batch)(after)
            for n in batch:
                await self.send_frame(frames.inform_frame(n))
                after = n.id
            self.cursor = max(self.cursor, after)
            if len(batch) < SYNC_BATCH:
                break
        await self.send_frame(frames.unread_frame(unread))

    def _read_batch(self, after: int):
        # unread_count reads the stored read watermark itself: another tab may have moved it.
        return selectors.notifications_after(self.user, after, SYNC_BATCH), selectors.unread_count(self.user)

    async def catch_up(self) -> None:
        """The hub lost pushes while the layer was down: send what this socket missed.
        A socket that has had nothing yet starts from shortly before it opened (the
        client drops ids it already has), which spares every connect a query."""
        if not self.is_signed_in:
            return
        after = self.cursor
        if after == 0:
            after = await database_sync_to_async(selectors.last_id_before)(self.user, self.opened_at - CATCH_UP_MARGIN)
        await self.send_stream_after(after)
