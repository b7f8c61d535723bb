"""/ws/chat/<room>/: a chat room socket. Thin: authenticate, join, call services.

On join the server sends `history` then `presence`, then live frames (those that
arrived meanwhile are held back and sent after, without repeats). Resuming after a blip: connect to
/ws/chat/<room>/?after=<last id you have>; the `history` frame then carries only the
messages with id > after (oldest first) instead of the last 50, so nothing is missed
and nothing repeats. If more were missed than fit in one frame (CATCH_UP_MAX messages,
CHAT_HISTORY_MAX_BYTES), it carries the newest that fit and `"reset": true` (drop what
you show). `"more": true, "before": <id>` on history: older messages exist; load them
over HTTP with ?before=<id>.

Frames added to CONTRACT.md: `{"type": "message_removed", "id": 5}` (an admin deleted
a message), `"reset"` on history, and error codes `not_found` (no such room, then
close 4404) and `unavailable` (no channel layer, then close 1011). Anonymous sockets
are accepted and closed at once with code 4401, so that browsers see the code.

Presence: one database row per socket, refreshed every CHAT_PRESENCE_HEARTBEAT seconds
(see chat.models.Presence); every heartbeat also sweeps stale rows of the room, so a
killed server process drops out of everyone's list within about a minute.
"""

import asyncio
import logging
import uuid
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.conf import settings

from realtime.consumer import CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED, GuardedConsumer
from realtime.frames import error_frame
from realtime.hub import get_hub

from . import frames, push, selectors, services

log = logging.getLogger(__name__)

CATCH_UP_MAX = 200
CATCH_UP_PAGE = 100

db = database_sync_to_async


class ChatConsumer(GuardedConsumer):
    client_schema = frames.CLIENT_FRAME

    async def connect(self):
        self.is_signed_in = False
        self.joined = False
        self.present = False
        self.heartbeat = None
        # Resume point: every message of the room with id <= stable was sent on this socket
        # (only database reads move it; ids are commit order per room). Live ids above it
        # are in sent, so none is sent twice.
        self.stable = 0
        self.sent: set[int] = set()
        self.conn = uuid.uuid4().hex
        self.pending: list | None = []  # live frames that arrive before the join frames are out
        user = self.scope["user"]
        await self.accept()
        if not user.is_authenticated:
            await self.send_frame(error_frame("unauthenticated", "sign in to chat"))
            return await self.close(code=CLOSE_UNAUTHENTICATED)
        name = self.scope["url_route"]["kwargs"]["room"]
        self.room = await db(selectors.room_by_name)(name)
        if self.room is None:  # sockets join rooms; the rooms page creates them
            await self.send_frame(error_frame("not_found", f"there is no room {name!r}"))
            return await self.close(code=CLOSE_NOT_FOUND)
        self.user, self.is_signed_in = user, True
        self.group = push.room_group(self.room.id)
        try:  # subscribe first, then read the snapshot: no gap between them
            await get_hub().join(self, [self.group])
        except Exception as exc:
            log.warning("chat socket could not join %s: %s", self.group, exc)
            await self.send_frame(error_frame("unavailable", "chat is unavailable; retry soon"))
            return await self.close(code=1011)
        self.joined = True
        await self.send_since(self._after_param())
        users, _ = await db(services.presence_enter)(room=self.room, user=user, conn=self.conn)
        self.present = True
        await self.send_frame(frames.presence_frame(users))
        await self._flush_pending()
        self.heartbeat = asyncio.create_task(self._beat())

    async def _flush_pending(self) -> None:
        """Live frames that came during the join (deliver() drops the messages history
        already had), with presence read again (a queued presence frame may be older than ours)."""
        pending, self.pending = self.pending, None
        presence_changed = False
        for message, frame in pending:
            if frame.get("type") == "presence":
                presence_changed = True
            else:
                await self.deliver(message, frame)
        if presence_changed:
            await self.send_frame(frames.presence_frame(await db(selectors.present_usernames)(self.room)))

    def _after_param(self) -> int | None:
        values = parse_qs(self.scope.get("query_string", b"").decode()).get("after")
        try:
            return max(0, int(values[0])) if values else None
        except ValueError:
            return None

    async def send_since(self, after: int | None) -> None:
        """The history frame: everything after `after` if that fits in one frame of
        CHAT_HISTORY_MAX_BYTES and CATCH_UP_MAX messages; else (or without `after`) the
        newest of the last 50 that fit, with `more` when older ones exist. One handshake
        costs the server at most one such frame, and no frame outgrows daphne's limit."""
        budget = settings.CHAT_HISTORY_MAX_BYTES
        reset = more = False
        if after is not None:
            missed = await db(selectors.messages_after)(self.room, after, CATCH_UP_MAX + 1)
            messages = frames.newest_that_fit(missed, budget)
            reset = len(missed) > CATCH_UP_MAX or len(messages) < len(missed)
        if after is None or reset:
            latest, more = await db(selectors.messages_before)(self.room, None)
            messages = frames.newest_that_fit(latest, budget)
            more = more or len(messages) < len(latest)
        self.stable = messages[-1].id if messages else (after or 0)
        await self.send_frame(frames.history_frame(messages, cursor=self.stable, reset=reset, more=more))

    async def disconnect(self, code):
        if self.heartbeat is not None:
            self.heartbeat.cancel()
        if self.joined:
            await get_hub().leave(self, [self.group])
        if self.present:
            try:
                await db(services.presence_leave)(room=self.room, user=self.user, conn=self.conn)
            except Exception as exc:  # the row goes stale and is swept by others
                log.warning("could not record leaving %s: %s", self.room, exc)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(settings.CHAT_PRESENCE_HEARTBEAT)
            try:
                await db(services.presence_beat)(room=self.room, user=self.user, conn=self.conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("presence heartbeat in %s failed: %s", self.room, exc)

    async def deliver(self, message: dict, frame: dict) -> None:
        if self.pending is not None:
            self.pending.append((message, frame))
            return
        if frame.get("type") == "message":
            if frame["id"] <= self.stable or frame["id"] in self.sent:
                return
            self.sent.add(frame["id"])
        await super().deliver(message, frame)

    async def catch_up(self) -> None:
        """The layer lost pushes (Redis outage): send the messages and presence this socket missed."""
        if not self.is_signed_in or self.pending is not None:
            return  # still joining: the join frames come from the database anyway
        while True:
            messages = await db(selectors.messages_after)(self.room, self.stable, CATCH_UP_PAGE)
            for m in messages:
                if m.id not in self.sent:
                    await self.send_frame(frames.message_frame(m))
            if messages:
                self.stable = messages[-1].id
                self.sent = {i for i in self.sent if i > self.stable}
            if len(messages) < CATCH_UP_PAGE or not await self.drained():
                break
        await self.send_frame(frames.synced_frame(self.stable))
        await self.send_frame(frames.presence_frame(await db(selectors.present_usernames)(self.room)))

    async def handle_frame(self, frame: dict) -> None:
        if not self.is_signed_in:
            return
        if self.scope.get("read_only"):
            return await self.send_frame(error_frame("forbidden", "this token is read-only: it may not post"))
        try:
            await db(services.chat_message_post)(room=self.room, author=self.user, text=frame["text"], budgeted=True)
        except services.RateLimited as exc:
            await self.send_frame(error_frame("rate_limited", str(exc)))
        except services.ChatError as exc:
            await self.send_frame(error_frame("bad_request", str(exc)))
