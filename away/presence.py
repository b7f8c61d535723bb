"""Presence that means "is looking": rows per socket (away.models.Presence), written
only when a socket's reported visibility changes, and refreshed for all of a process's
sockets at once by one heartbeat task per process, so a socket costs one dict entry."""

import asyncio
import logging
import uuid
from datetime import timedelta

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone

from .models import Presence

log = logging.getLogger(__name__)


def _cutoff():
    return timezone.now() - timedelta(seconds=settings.AWAY_PRESENCE_STALE)


# --- reads (any process) --------------------------------------------------------------


def is_looking(user_id: int) -> bool:
    """Some tab of this user is visible and in use now, in any process."""
    return Presence.objects.filter(user_id=user_id, visible=True, seen__gte=_cutoff()).exists()


def has_open_tab(user_id: int) -> bool:
    return Presence.objects.filter(user_id=user_id, seen__gte=_cutoff()).exists()


def looking_user_ids(user_ids) -> set[int]:
    return set(
        Presence.objects.filter(user_id__in=list(user_ids), visible=True, seen__gte=_cutoff())
        .values_list("user_id", flat=True)
    )


def sweep_stale() -> int:
    """Rows of processes that died without saying goodbye."""
    deleted, _ = Presence.objects.filter(seen__lt=_cutoff()).delete()
    return deleted


# --- writes -----------------------------------------------------------------------------


def _report(conn: str, user_id: int, visible: bool) -> None:
    Presence.objects.update_or_create(conn=conn, defaults={"user_id": user_id, "visible": visible, "seen": timezone.now()})


def _forget(conn: str) -> None:
    Presence.objects.filter(conn=conn).delete()


def _beat(rows: dict[str, tuple[int, bool]]) -> None:
    """Refresh these sockets' rows; re-create any a sweep took (after a database outage)."""
    now = timezone.now()
    conns = list(rows)
    for i in range(0, len(conns), 500):
        chunk = conns[i:i + 500]
        if Presence.objects.filter(conn__in=chunk).update(seen=now) < len(chunk):
            present = set(Presence.objects.filter(conn__in=chunk).values_list("conn", flat=True))
            Presence.objects.bulk_create(
                [Presence(conn=c, user_id=rows[c][0], visible=rows[c][1], seen=now) for c in chunk if c not in present],
                ignore_conflicts=True,
            )


class LocalPresence:
    """This process's sockets that have reported presence: consumer → (conn, user id, visible)."""

    def __init__(self) -> None:
        self.sockets: dict[object, tuple[str, int, bool]] = {}
        self.task: asyncio.Task | None = None

    async def report(self, consumer, user_id: int, visible: bool) -> None:
        known = self.sockets.get(consumer)
        if known is not None and known[2] == visible:
            return  # no change, no write
        conn = known[0] if known is not None else uuid.uuid4().hex
        await database_sync_to_async(_report)(conn, user_id, visible)
        self.sockets[consumer] = (conn, user_id, visible)
        self._ensure_heartbeat()

    async def forget(self, consumer) -> None:
        known = self.sockets.pop(consumer, None)
        if known is None:
            return
        if not self.sockets and self.task is not None:
            self.task.cancel()
            self.task = None
        try:
            await database_sync_to_async(_forget)(known[0])
        except Exception as exc:  # the row goes stale and stops counting by itself
            log.warning("could not remove a presence row: %s", exc)

    def _ensure_heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.task = loop.create_task(self._heartbeat())

    async def _heartbeat(self) -> None:
        while self.sockets:
            await asyncio.sleep(settings.AWAY_PRESENCE_HEARTBEAT)
            rows = {conn: (user_id, visible) for conn, user_id, visible in self.sockets.values()}
            try:
                await database_sync_to_async(_beat)(rows)
            except Exception as exc:  # the next beat heals it
                log.warning("presence heartbeat failed: %s", exc)


local = LocalPresence()
