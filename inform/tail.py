"""The embedded default (no REDIS_URL) hears pushes from other processes.

The in-process channel layer reaches this process only: a notification stored by
`bin/manage send_inform` or any other process on the same database would reach open
sockets only at their next sync. So while this process's hub runs (realtime.hub, local
sources), it tails the notifications table: every POLL_SECONDS it reads MAX(id) and
pushes the rows above the last one it saw (services.notifications_push_again), as
their writer would have. Ids are commit order (realtime.ordering; SQLite writes one
transaction at a time), so a row below one already seen never commits later.

Rows this process stored itself are pushed a second time: sockets drop an id they were
sent (InformConsumer.deliver) and pages drop feed keys they show.
"""

import asyncio
import logging

from channels.db import database_sync_to_async

from . import services
from .models import Notification
from .selectors import latest_notification_id

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
BATCH = 500


class TableTail:
    def __init__(self) -> None:
        self.last = latest_notification_id()  # what is stored now was pushed, or will be synced

    def poll(self) -> int:
        """Push the rows stored since the last poll; how many."""
        latest = latest_notification_id()
        if latest <= self.last:
            return 0
        ids = list(Notification.objects.filter(id__gt=self.last, id__lte=latest).order_by("id")
                   .values_list("id", flat=True)[:BATCH])
        self.last = ids[-1] if len(ids) == BATCH else latest
        return services.notifications_push_again(Notification.objects.filter(id__in=ids).order_by("id"))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                while await database_sync_to_async(self.poll)() == BATCH:
                    pass
            except Exception as exc:  # the database is away a moment: sockets sync on reconnect
                log.warning("could not tail notifications: %s", exc)


async def start():
    """A local source for the hub: reads where the table stands, returns the tail loop."""
    tail = await database_sync_to_async(TableTail)()
    return tail.run()
