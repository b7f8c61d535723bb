"""The only module that talks to the channel layer.

Domains call group_send() or group_send_many() (sync, after the current transaction
commits by default) or agroup_send() (async, at once); nobody else calls the layer. A send that cannot reach
the layer is logged (once per interval) and never raises into the caller: the layer is
at-most-once anyway, so clients catch up from the database.

Every layer message carries HUB_MESSAGE_TYPE and its group name, because each server
process receives them on one channel (realtime.hub) and fans them out itself. A body
has "frame" (what sockets are sent) and optionally "anonymous_frame" (what sockets
without a signed-in user are sent instead).
"""

import asyncio
import logging
import os
import threading
import time

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)

HUB_MESSAGE_TYPE = "hub.message"
_FAILURE_LOG_INTERVAL = 30.0
_last_failure_log = 0.0


def group_send(group: str, body: dict, *, after_commit: bool = True) -> None:
    """Send body to every socket in group; after the current transaction commits unless
    after_commit=False (throwaway state such as presence)."""
    group_send_many([(group, body)], after_commit=after_commit)


def group_send_many(sends: "list[tuple[str, dict]]", *, after_commit: bool = True) -> None:
    """group_send for several (group, body) pairs, in order: one trip to each Redis server
    for all of them (a reply to a post with 200 watchers is 201 pushes)."""
    if not sends:
        return
    if after_commit:
        on_commit(lambda: _send_now(sends))
    else:
        _send_now(sends)


def on_commit(fn) -> None:
    """Run fn once the current transaction commits (at once outside one); dropped on
    rollback, and an exception from it is logged, never raised into the committer."""
    transaction.on_commit(fn, robust=True)


async def agroup_send(group: str, body: dict) -> None:
    """group_send for async callers outside a transaction; raises if the layer fails.
    The message carries its publish time (sent_at; right after the commit for
    group_send), from which receiving processes measure the push lag (realtime.metrics)."""
    await agroup_send_many([(group, body)])


async def agroup_send_many(sends: "list[tuple[str, dict]]") -> None:
    """agroup_send for several (group, body) pairs: one pipeline per Redis server with
    the sharded layer (realtime.layers), else one send after another."""
    messages = _messages(sends)
    layer = _loop_layer()
    if hasattr(layer, "group_send_many"):
        await layer.group_send_many(messages)
        return
    for group, message in messages:
        await get_channel_layer().group_send(group, message)


def _messages(sends: "list[tuple[str, dict]]") -> list:
    sent_at = time.time()
    return [(group, {"type": HUB_MESSAGE_TYPE, "group": group, "sent_at": sent_at, **body}) for group, body in sends]


def _send_now(sends: "list[tuple[str, dict]]") -> None:
    try:
        if _server_loop() is not None:
            # Sync code the server's event loop called (a view, via sync_to_async): publish
            # on that loop, with the layer connection the process hub already holds.
            async_to_sync(agroup_send_many)(sends)
        elif _blocking(sends):
            pass  # a sync caller of the Redis layer: published from this thread
        else:
            # Any other sync caller (management command, worker, script, or a thread with
            # its own running loop) of a layer that cannot publish from this thread: one
            # long-lived sender loop per process, so the layer keeps its Redis connection
            # instead of opening one per push.
            future = asyncio.run_coroutine_threadsafe(agroup_send_many(sends), _sender_loop())
            try:
                future.result(timeout=_SEND_TIMEOUT)
            except BaseException:
                future.cancel()
                raise
    except Exception as exc:  # the rows are stored; clients catch up with sync
        _log_failure(", ".join(dict.fromkeys(group for group, _ in sends)), exc)


def _blocking(sends: "list[tuple[str, dict]]") -> bool:
    """Publish from this thread if the layer can (realtime.layers): True if it did."""
    layer = get_channel_layer()
    # On the class: channels-redis's own layer answers unknown attributes from its
    # per-loop layer, which needs a running loop.
    if not hasattr(type(layer), "group_send_many_blocking"):
        return False
    return layer.group_send_many_blocking(_messages(sends))


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
            threading.Thread(target=loop.run_forever, name="realtime-sender", daemon=True).start()
            _sender = (os.getpid(), loop)
        return _sender[1]


def _log_failure(group: str, exc: Exception) -> None:
    global _last_failure_log
    now = time.monotonic()
    if now - _last_failure_log >= _FAILURE_LOG_INTERVAL:
        _last_failure_log = now
        log.error("push to %s failed (%s: %s); clients will catch up on sync", group, type(exc).__name__, exc)


# --- for the process hub (realtime.hub) --------------------------------------------


async def new_hub_channel() -> str:
    return await get_channel_layer().new_channel("hub.")


async def hub_receive(channel: str) -> dict:
    return await get_channel_layer().receive(channel)


async def hub_join(groups: "set[str] | list[str]", channel: str) -> None:
    """Join many groups: one command per Redis server with the sharded layer, else one
    group_add per group."""
    layer = _loop_layer()
    if hasattr(layer, "group_add_many"):
        await layer.group_add_many(groups, channel)
        return
    for group in groups:
        await get_channel_layer().group_add(group, channel)


async def hub_leave(groups: "set[str] | list[str]", channel: str) -> None:
    layer = _loop_layer()
    if hasattr(layer, "group_discard_many"):
        await layer.group_discard_many(groups, channel)
        return
    for group in groups:
        await get_channel_layer().group_discard(group, channel)


def _loop_layer():
    """The layer object of this event loop (the pub/sub layers keep one per loop)."""
    layer = get_channel_layer()
    get = getattr(layer, "_get_layer", None)
    return get() if get is not None else layer


def watch_reconnects(callback) -> None:
    """Call callback() whenever a subscriber connection of the Redis pub/sub layer is
    re-established (redis-py reconnects and re-subscribes quietly; what was published
    meanwhile is gone). Idempotent; a layer without such connections (in-memory) has
    nothing to watch, and the hub's probes remain."""
    try:
        shards = get_channel_layer()._get_layer()._shards
    except AttributeError:
        return
    for shard in shards:
        pubsub = getattr(shard, "_pubsub", None)
        connection = getattr(pubsub, "connection", None)
        if connection is None or getattr(connection, "_realtime_watcher", None) is not None:
            continue
        # redis-py keeps connect callbacks as weak methods: the watcher lives on the connection.
        connection._realtime_watcher = _ReconnectWatcher(callback)
        connection.register_connect_callback(connection._realtime_watcher.on_connect)


class _ReconnectWatcher:
    def __init__(self, callback) -> None:
        self.callback = callback

    def on_connect(self, connection) -> None:
        # Registered after the first connect, so every call is a reconnect.
        self.callback()


async def hub_probe(channel: str, token: int) -> None:
    await get_channel_layer().send(channel, {"type": HUB_MESSAGE_TYPE, "kind": "probe", "token": token})
