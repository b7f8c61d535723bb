"""The process hub: one channel-layer subscription per server process, fanned out locally.

The stock Channels pattern gives every socket its own layer channel and sends one
layer message per socket per broadcast, each dispatched through the consumer (with a
thread hop per message since Channels 4.2). Here each process (each event loop) has
one Hub: it joins the layer groups its local sockets need (the site group once, a
user or room group once however many tabs), receives every message once, serialises
each frame once and writes it to the local sockets itself.

The hub also heals: every INFORM_HUB_PROBE_INTERVAL seconds it sends itself a probe
through the layer. When probes stop coming back (Redis down) and then return, pushes
may have been lost meanwhile (the layer is at-most-once), so it re-joins its groups
and asks every local socket to catch up from the database.
"""

import asyncio
import itertools
import logging
import weakref
from collections import defaultdict
from typing import Protocol

from django.conf import settings

from . import frames, metrics, transport, wire

log = logging.getLogger(__name__)

# Coroutine functions that return a coroutine to run beside the hub while it runs (from
# its first socket to its last): add_local_source(). A domain feeds the hub from a source
# the layer cannot hear (inform.tail, for the in-process layer).
_local_sources: list = []


def add_local_source(start) -> None:
    """`await start()` prepares (before the first socket's join returns) and gives the
    coroutine to run as a hub task; it pushes through the transport as any writer does."""
    if start not in _local_sources:
        _local_sources.append(start)


# Layers forget group members after group_expiry (a day by default); re-joining
# hourly keeps a long-lived process subscribed whatever the layer.
REJOIN_SECONDS = 3600


class HubSocket(Protocol):
    is_signed_in: bool
    session: str | None

    async def end_session(self) -> None: ...

    async def deliver(self, message: dict, frame: dict) -> None: ...

    async def catch_up(self) -> None: ...


class Hub:
    def __init__(self) -> None:
        self.channel: str | None = None
        self.members: dict[str, set[HubSocket]] = defaultdict(set)
        self.healthy = True
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task] = []
        self._probe_token = itertools.count(1)
        self._probe_waiters: dict[int, asyncio.Future] = {}
        self._wake = asyncio.Event()  # a reconnect was seen: probe and heal now

    async def join(self, socket: HubSocket, groups: list[str]) -> None:
        """Returns once the layer will deliver every group's messages to this socket."""
        async with self._lock:
            if self.channel is None:
                self.channel = await transport.new_hub_channel()
                self._tasks = [asyncio.create_task(self._receive_loop()), asyncio.create_task(self._probe_loop())]
                for start in _local_sources:
                    try:
                        self._tasks.append(asyncio.create_task(await start()))
                    except Exception:
                        log.exception("local source %r did not start", start)
            for group in groups:
                if not self.members[group]:
                    await transport.hub_join(group, self.channel)
                    transport.watch_reconnects(self._layer_reconnected)
                self.members[group].add(socket)

    def _layer_reconnected(self) -> None:
        """The layer's subscriber connection came back after a drop: whatever was published
        meanwhile is lost, however quickly it came back, so heal at once."""
        if self.channel is not None:
            log.warning("channel layer reconnected; local sockets will catch up from the database")
            self.healthy = False
            self._wake.set()

    async def leave(self, socket: HubSocket, groups: "list[str] | tuple[str, ...]") -> None:
        async with self._lock:
            for group in groups:
                members = self.members.get(group)
                if members is None:
                    continue
                members.discard(socket)
                if not members:
                    del self.members[group]
                    try:
                        await transport.hub_leave(group, self.channel)
                    except Exception as exc:
                        log.warning("could not leave group %s: %s", group, exc)
            if not self.members and self.channel is not None:
                await self._stop()

    async def _stop(self) -> None:
        # Forget the channel before waiting: the wait can be cancelled (daphne cancels an
        # application that takes too long to close, as in a connection storm), and a hub
        # left holding a channel whose receive loop is gone would never deliver again, nor
        # let a socket join a new group (the layer has dropped the channel).
        tasks, self._tasks, self.channel = self._tasks, [], None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _receive_loop(self) -> None:
        channel = self.channel
        while True:
            try:
                message = await transport.hub_receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("hub receive failed: %s", exc)
                await asyncio.sleep(1)
                continue
            try:
                await self._fan_out(message)
            except Exception:
                log.exception("hub could not deliver %r", message.get("kind"))

    async def _fan_out(self, message: dict) -> None:
        kind = message.get("kind")
        if kind == "probe":
            waiter = self._probe_waiters.pop(message["token"], None)
            if waiter is not None and not waiter.done():
                waiter.set_result(True)
            return
        sockets = list(self.members.get(message.get("group", ""), ()))
        if not sockets:
            return
        if kind == "end_session":
            for socket in sockets:
                if message["session"] is None or socket.session == message["session"]:
                    await socket.end_session()
            return
        frame = message["frame"]
        # One serialisation (and, under daphne, one WebSocket framing) per broadcast; the
        # ASGI message is shared by every send.
        signed_in = wire.PreparedSend(frames.dumps(frame))
        anonymous, anonymous_frame = signed_in, frame
        if "anonymous_frame" in message:
            anonymous_frame = message["anonymous_frame"]
            anonymous = wire.PreparedSend(frames.dumps(anonymous_frame))
        for socket in sockets:
            try:
                if socket.is_signed_in:
                    await socket.deliver(signed_in, frame)
                else:
                    await socket.deliver(anonymous, anonymous_frame)
            except Exception as exc:  # one closed socket must not starve the others
                log.debug("deliver failed: %s", exc)
        metrics.fanned_out(message, len(sockets))

    async def _probe(self, timeout: float) -> bool:
        token = next(self._probe_token)
        waiter = asyncio.get_running_loop().create_future()
        self._probe_waiters[token] = waiter
        try:
            await asyncio.wait_for(transport.hub_probe(self.channel, token), timeout)
            await asyncio.wait_for(waiter, timeout)
            return True
        except Exception:
            return False
        finally:
            self._probe_waiters.pop(token, None)

    async def _probe_loop(self) -> None:
        interval = settings.INFORM_HUB_PROBE_INTERVAL
        rejoin_every = max(1, int(REJOIN_SECONDS / interval))
        # A busy process may take a while to reach the probe in its queue; a late probe is
        # not a lost one, so wait generously (a dead Redis fails the publish at once).
        timeout = max(5.0, 2 * interval)
        for n in itertools.count(1):
            try:
                await asyncio.wait_for(self._wake.wait(), interval)
            except TimeoutError:
                pass
            self._wake.clear()
            if await self._probe(timeout=timeout):
                if not self.healthy:
                    await self._heal()
                elif n % rejoin_every == 0:
                    await self._rejoin()
            elif self.healthy:
                self.healthy = False
                log.error("channel layer stopped delivering; local sockets will catch up when it returns")

    async def _rejoin(self) -> bool:
        async with self._lock:
            try:
                for group in list(self.members):
                    await transport.hub_join(group, self.channel)
                return True
            except Exception as exc:
                log.warning("re-joining groups failed, will retry: %s", exc)
                return False

    async def _heal(self) -> None:
        if not await self._rejoin():
            return
        # Groups are live again; now close the gap from the database.
        if not await self._probe(timeout=max(5.0, 2 * settings.INFORM_HUB_PROBE_INTERVAL)):
            return
        self.healthy = True
        metrics.LAYER_HEALS.inc()
        sockets = {s for members in self.members.values() for s in members}
        log.warning("channel layer is back; %d sockets catch up from the database", len(sockets))
        await asyncio.gather(*(s.catch_up() for s in sockets), return_exceptions=True)


_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub]" = weakref.WeakKeyDictionary()


def get_hub() -> Hub:
    """The hub of the running event loop (one per server process; tests run several loops)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub()
    return hub
