"""The one push gateway: the only module that talks to the channel layer.

Views, signals, services, admin actions and commands call the notify_* functions;
nobody else builds group names or calls group_send. Pushes run after the current
transaction commits (a rolled-back row is never announced) and never raise into the
caller: a push that cannot reach the layer is logged (once per interval) and the
client catches up from the database on its next sync.

Layer messages carry a "kind" and, for groups, the group name, because each server
process receives them on one channel (inform.hub) and fans them out itself.
"""

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from . import frames

log = logging.getLogger(__name__)

SITE_GROUP = "site"
HUB_MESSAGE_TYPE = "hub.message"  # the type every layer message of ours carries
_FAILURE_LOG_INTERVAL = 30.0
_last_failure_log = 0.0


def user_group(user_id: int) -> str:
    return f"user.{int(user_id)}"


def room_group(room_id: int) -> str:
    return f"chat.{int(room_id)}"


# --- what callers use -------------------------------------------------------------


def notify_informs(notifications: Iterable) -> None:
    """Push stored personal notifications to their recipients, with the unread count."""
    notifications = list(notifications)

    def push() -> None:
        from .selectors import unread_counts

        # Counts read after commit, with the recipients' stored read watermarks (another
        # tab's read_all may have moved them); a recipient deleted since has no count.
        counts = unread_counts({n.recipient_id for n in notifications})
        for n in notifications:
            if n.recipient_id in counts:
                frame = frames.inform_frame(n, unread=counts[n.recipient_id])
                _group_send(user_group(n.recipient_id), {"kind": "personal", "frame": frame})

    _after_commit(push)


def notify_site_update(notification) -> None:
    """One message for every process: signed-in sockets get an inform frame, anonymous a feed frame."""

    def push() -> None:
        _group_send(
            SITE_GROUP,
            {
                "kind": "site_update",
                "frame": frames.inform_frame(notification),
                "anonymous_frame": frames.site_update_feed_frame(notification),
            },
        )

    _after_commit(push)


def notify_feed(*, event: str, actor: str | None, text: str, url: str, created) -> None:
    frame = frames.feed_frame(event=event, actor=actor, text=text, url=url, created=created)
    _after_commit(lambda: _group_send(SITE_GROUP, {"kind": "feed", "frame": frame}))


def notify_unread(user) -> None:
    """Every socket of the user learns the absolute unread count (read in another tab)."""

    def push() -> None:
        from .selectors import unread_count

        _group_send(user_group(user.pk), {"kind": "personal", "frame": frames.unread_frame(unread_count(user))})

    _after_commit(push)


def notify_room(room_id: int, frame: dict, *, after_commit: bool = True) -> None:
    """A chat frame for everyone in the room. Presence-style throwaway frames pass after_commit=False."""
    push = lambda: _group_send(room_group(room_id), {"kind": "room", "frame": frame})  # noqa: E731
    if after_commit:
        _after_commit(push)
    else:
        push()


async def anotify_room(room_id: int, frame: dict) -> None:
    """notify_room for async callers outside a transaction (chat consumers)."""
    await _agroup_send(room_group(room_id), {"kind": "room", "frame": frame})


# --- the only code that touches the layer -----------------------------------------


def _after_commit(push: Callable[[], None]) -> None:
    transaction.on_commit(push, robust=True)


def _group_send(group: str, body: dict) -> None:
    try:
        if _server_loop() is not None:
            # Sync code the server's event loop called (a view, via sync_to_async): publish
            # on that loop, with the layer connection the process hub already holds.
            async_to_sync(_agroup_send)(group, body)
        else:
            # Any other sync caller (management command, worker, script, or a thread with
            # its own running loop): one long-lived sender loop per process, so the layer
            # keeps its Redis connection. async_to_sync here would start a thread, an event
            # loop and a new Redis connection for every push (docs/performance.md).
            future = asyncio.run_coroutine_threadsafe(_agroup_send(group, body), _sender_loop())
            try:
                future.result(timeout=_SEND_TIMEOUT)
            except BaseException:
                future.cancel()
                raise
    except Exception as exc:  # the row is stored; clients catch up with sync
        _log_failure(group, exc)


def _server_loop() -> "asyncio.AbstractEventLoop | None":
    """The running event loop that called this sync thread through asgiref, if any."""
    try:
        asyncio.get_running_loop()
        return None  # a thread running its own loop (a shell, Playwright) cannot block on it
    except RuntimeError:
        pass
    threadlocal = SyncToAsync.threadlocal
    if getattr(threadlocal, "main_event_loop_pid", None) != os.getpid():
        return None
    loop = getattr(threadlocal, "main_event_loop", None)
    return loop if loop is not None and loop.is_running() else None


_SEND_TIMEOUT = 10.0
_sender: "tuple[int, asyncio.AbstractEventLoop] | None" = None
_sender_lock = threading.Lock()


def _sender_loop() -> asyncio.AbstractEventLoop:
    global _sender
    with _sender_lock:
        if _sender is None or _sender[0] != os.getpid() or _sender[1].is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="inform-push-sender", daemon=True).start()
            _sender = (os.getpid(), loop)
        return _sender[1]


async def _agroup_send(group: str, body: dict) -> None:
    await get_channel_layer().group_send(group, {"type": HUB_MESSAGE_TYPE, "group": group, **body})


def _log_failure(group: str, exc: Exception) -> None:
    global _last_failure_log
    now = time.monotonic()
    if now - _last_failure_log >= _FAILURE_LOG_INTERVAL:
        _last_failure_log = now
        log.error("push to %s failed (%s: %s); clients will catch up on sync", group, type(exc).__name__, exc)


# --- for the process hub (inform.hub) ---------------------------------------------


async def new_hub_channel() -> str:
    return await get_channel_layer().new_channel("hub.")


async def hub_receive(channel: str) -> dict:
    return await get_channel_layer().receive(channel)


async def hub_join(group: str, channel: str) -> None:
    await get_channel_layer().group_add(group, channel)


async def hub_leave(group: str, channel: str) -> None:
    await get_channel_layer().group_discard(group, channel)


async def hub_probe(channel: str, token: int) -> None:
    await get_channel_layer().send(channel, {"type": HUB_MESSAGE_TYPE, "kind": "probe", "token": token})
