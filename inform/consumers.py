"""/ws/inform/: one socket per browser tab. Thin: authenticate, join the hub, decode a
frame, call a service, forward what the hub delivers."""

import logging
from datetime import timedelta

from channels.db import database_sync_to_async
from django.utils import timezone

from realtime.consumer import GuardedConsumer
from realtime.frames import error_frame
from realtime.hub import get_hub

from . import frames, push, selectors, services

log = logging.getLogger(__name__)

SYNC_BATCH = 200
# Rows are stamped when inserted but announced when committed: look back this far.
CATCH_UP_MARGIN = timedelta(minutes=1)


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
            await self.send_frame(error_frame("unavailable", "live updates are unavailable; retry soon"))
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
                error_frame("unauthenticated", "sign in to sync or read notifications")
            )
        kind = frame["type"]
        if kind == "sync":
            await self.send_stream_after(frame["after"])
        elif kind == "read":
            try:
                await database_sync_to_async(services.notifications_mark_read)(self.user, frame["ids"])
            except services.InformError as exc:
                await self.send_frame(error_frame(exc.code, exc.message))
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
