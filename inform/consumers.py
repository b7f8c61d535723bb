"""/ws/inform/: one socket per browser tab. Thin: authenticate, join the hub, decode a
frame, call a service, forward what the hub delivers."""

import asyncio
import logging
from datetime import timedelta

from channels.db import database_sync_to_async
from django.utils import timezone

from away.presence import local as local_presence
from realtime.batched import Batched
from realtime.consumer import GuardedConsumer
from realtime.frames import error_frame
from realtime.hub import get_hub

from . import frames, push, selectors, services
from .models import Verb

log = logging.getLogger(__name__)

SYNC_BATCH = 200
# Live pushes remembered above the resume point before the socket reads the database to
# move it up (bounds the memory of a socket that never syncs).
MAX_SENT_ABOVE_STABLE = 500
# Rows are stamped when inserted but announced when committed: look back this far.
CATCH_UP_MARGIN = timedelta(minutes=1)
# The syncs of sockets that ask at once (a reconnect storm) are one database trip.
sync_start = Batched(selectors.sync_starts)


class InformConsumer(GuardedConsumer):
    """Resume point: everything of the user's stream with id <= self.stable has been sent
    on this socket. Only database reads move it (ids are commit order, see
    realtime.ordering); a live push does not, since it may overtake one the layer lost.
    Ids sent above it are in self.sent, so the server never sends an id twice on one
    socket unless the client asks again with `sync`."""

    client_schema = frames.CLIENT_FRAME
    # Defaults on the class: an idle socket's __dict__ holds only what differs.
    joined = False
    stable: int | None = None  # None: no database read on this socket yet
    sent_bound_sync: "asyncio.Future | None" = None
    site_updates_off = False  # the person's preference, read at every sync
    sent: "set[int] | frozenset[int]" = frozenset()  # a set once something is sent above stable
    _sync_lock: asyncio.Lock | None = None

    @property
    def sync_lock(self) -> asyncio.Lock:
        """One sync or catch-up at a time (made on first use: most sockets sync once)."""
        if self._sync_lock is None:
            self._sync_lock = asyncio.Lock()
        return self._sync_lock

    async def connect(self):
        self.user = self.scope["user"]
        self.is_signed_in = self.user.is_authenticated
        self.hub_groups = (push.SITE_GROUP,)
        if self.is_signed_in:  # anonymous sockets have no stream to resume (and stay small)
            self.hub_groups = (push.SITE_GROUP, push.user_group(self.user.pk))
            self.opened_at = timezone.now()
        try:
            await get_hub().join(self, self.hub_groups)
        except Exception as exc:
            log.warning("inform socket could not join its groups: %s", exc)
            await self.accept()
            await self.send_frame(error_frame("unavailable", "live updates are unavailable; retry soon"))
            await self.close(code=1011)
            return
        self.joined = True
        await self.accept()

    async def disconnect(self, code):
        await local_presence.forget(self)
        if self.joined:
            self.joined = False
            await get_hub().leave(self, self.hub_groups)

    async def deliver(self, message: dict, frame: dict) -> None:
        if frame.get("type") == "inform" and self.is_signed_in:
            if self.site_updates_off and frame.get("verb") == Verb.SITE_UPDATE:
                return  # not in this person's stream
            frame_id = frame["id"]
            if frame_id in self.sent or (self.stable is not None and frame_id <= self.stable):
                return  # a sync already sent it
            self._mark_sent(frame_id)
            if len(self.sent) > MAX_SENT_ABOVE_STABLE and not self.sync_lock.locked():
                self.sent_bound_sync = self.sent_bound_sync or asyncio.ensure_future(self._sync_to_bound_sent())
        await super().deliver(message, frame)

    async def handle_frame(self, frame: dict) -> None:
        if not self.is_signed_in:
            return await self.send_frame(error_frame("unauthenticated", "sign in to sync or read notifications"))
        kind = frame["type"]
        if kind != "sync" and self.scope.get("read_only"):
            return await self.send_frame(error_frame("forbidden", "this token is read-only: it may sync, not read"))
        if kind == "sync":
            await self.send_stream_after(frame["after"])
        elif kind == "read":
            try:
                await database_sync_to_async(services.notifications_mark_read)(self.user, frame["ids"])
            except services.InformError as exc:
                await self.send_frame(error_frame(exc.code, exc.message))
        elif kind == "read_all":
            await database_sync_to_async(services.notifications_mark_all_read)(self.user)
        elif kind == "presence":
            await local_presence.report(self, self.user.pk, frame["visible"])

    async def send_stream_after(self, after: int, *, only_unsent: bool = False) -> None:
        """Every stored notification with id > after (only_unsent: not yet sent on this
        socket), oldest first, page by page as the client reads them; then the unread
        count and the new resume point (`synced`). One trip to the database thread and
        one query when nothing is new (a reconnect storm is mostly that), shared with the
        sockets that sync at the same time."""
        async with self.sync_lock:
            if only_unsent and self.stable is not None:
                after = max(after, self.stable)  # at or below it, all was sent (and forgotten)
            state, batch = await sync_start((self.user, after, SYNC_BATCH))
            upto, counters = state.upto, state.counters
            self.site_updates_off = state.site_updates_off
            if after > upto:
                # A resume point this database never gave (restored, or another site):
                # nothing can be caught up exactly; the client reloads its state.
                self.stable, self.sent = upto, frozenset()
                await self.send_frame(frames.reset_frame(upto))
                await self.send_frame(frames.unread_frame(counters))
                return
            pages = 1
            while True:
                for n in batch:
                    if not (only_unsent and n.id in self.sent):
                        self._mark_sent(n.id)
                        await self.send_frame(frames.inform_frame(n))
                if len(batch) < SYNC_BATCH:
                    break
                after = batch[-1].id
                if not await self.drained():
                    return
                batch = await database_sync_to_async(selectors.notifications_between)(self.user, after, upto, SYNC_BATCH)
                pages += 1
            if pages > 1:  # a long answer: count again at its end, as the last push left them
                counters = await database_sync_to_async(selectors.counters)(self.user)
            self.stable = upto if self.stable is None else max(self.stable, upto)
            self.sent = {i for i in self.sent if i > self.stable} or frozenset()
            await self.send_frame(frames.unread_frame(counters))
            await self.send_frame(frames.synced_frame(self.stable))

    def _mark_sent(self, frame_id: int) -> None:
        if not self.sent:
            self.sent = set()  # an idle socket keeps the shared empty frozenset
        self.sent.add(frame_id)

    async def _sync_to_bound_sent(self) -> None:
        """Moves the resume point up, which empties self.sent."""
        try:
            await self.catch_up()
        finally:
            self.sent_bound_sync = None

    async def catch_up(self) -> None:
        """The layer may have lost pushes (it reconnected, or was down): send what this
        socket missed. A socket that never synced starts from shortly before it opened."""
        if not self.is_signed_in or not self.joined:
            return
        after = self.stable
        if after is None:
            after = await database_sync_to_async(selectors.last_id_before)(self.user, self.opened_at - CATCH_UP_MARGIN)
        await self.send_stream_after(after, only_unsent=True)
