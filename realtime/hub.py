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
import time
import weakref
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
# A group whose last local socket left stays subscribed this long (a tab that reloads, or
# a reconnect storm, joins again without a layer command); then it is left in a batch.
IDLE_SECONDS = 10.0


class HubSocket(Protocol):
    is_signed_in: bool
    session: str | None

    async def end_session(self) -> None: ...

    async def deliver(self, message: dict, frame: dict) -> None: ...

    async def catch_up(self) -> None: ...


class Hub:
    """Joins and leaves are batched: a socket's groups are noted at once, and the layer
    is told in one command per Redis server for every group that changed meanwhile. In a
    reconnect storm thousands of sockets leave and join together; one layer command per
    group, each taking its turn under a lock and a turn of a crowded event loop, kept
    handshakes waiting past daphne's timeouts (docs/scaling.md). A group whose last socket
    left stays subscribed for IDLE_SECONDS, so a returning tab joins without a command."""

    def __init__(self) -> None:
        self.channel: str | None = None
        # group -> its local sockets: the socket itself while it is the only one (most
        # groups: a user's tabs, a session), a set from the second on (memory per socket).
        self.members: dict[str, HubSocket | set[HubSocket]] = {}
        self.healthy = True
        self._lock = asyncio.Lock()  # starting and stopping the channel
        self._tasks: list[asyncio.Task] = []
        self._probe_token = itertools.count(1)
        self._probe_waiters: dict[int, asyncio.Future] = {}
        self._wake = asyncio.Event()  # a reconnect was seen: probe and heal now
        self._subscribed: set[str] = set()  # groups the layer delivers to self.channel
        self._joining: dict[str, asyncio.Future] = {}  # group -> its batch's subscribe
        self._queued: set[str] = set()  # groups for the next batch
        self._queued_done: asyncio.Future | None = None
        self._flusher: asyncio.Task | None = None
        self._starting: asyncio.Task | None = None
        self._idle: dict[str, float] = {}  # subscribed group without sockets -> since when

    async def join(self, socket: HubSocket, groups: list[str]) -> None:
        """Returns once the layer will deliver every group's messages to this socket."""
        if self.channel is None:
            await self._started()
        waits = set()
        for group in groups:
            self._add(group, socket)
            self._idle.pop(group, None)
            if group not in self._subscribed:
                waits.add(self._joining.get(group) or self._queue(group))
        if waits:
            try:
                # Shielded: a batch's future is shared, and a cancelled join (daphne gives up
                # on a slow handshake) must not cancel it for every other socket in the batch.
                await asyncio.gather(*(asyncio.shield(w) for w in waits))
            except BaseException:
                self._forget(socket, groups)
                raise

    async def _started(self) -> None:
        # One task starts the hub and every join waiting for it wakes at once (each waiter
        # taking the lock in turn would cost a turn of the event loop apiece).
        if self._starting is None or self._starting.done():
            self._starting = asyncio.create_task(self._start_locked())
        await asyncio.shield(self._starting)
        if self.channel is None:
            raise ConnectionError("the hub stopped while starting")

    async def _start_locked(self) -> None:
        async with self._lock:
            if self.channel is None:
                await self._start()

    async def _start(self) -> None:
        self.channel = await transport.new_hub_channel()
        self._tasks = [asyncio.create_task(self._receive_loop()), asyncio.create_task(self._probe_loop())]
        for start in _local_sources:
            try:
                self._tasks.append(asyncio.create_task(await start()))
            except Exception:
                log.exception("local source %r did not start", start)

    def _queue(self, group: str) -> asyncio.Future:
        if self._queued_done is None:
            self._queued_done = asyncio.get_running_loop().create_future()
        self._queued.add(group)
        self._joining[group] = self._queued_done
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return self._queued_done

    async def _flush(self) -> None:
        """Subscribe what was queued, one batch at a time; joins that come meanwhile form
        the next batch."""
        await asyncio.sleep(0)  # the joins of this turn of the event loop join this batch
        while self._queued:
            batch, done = self._queued, self._queued_done
            self._queued, self._queued_done = set(), None
            channel = self.channel
            try:
                await transport.hub_join(batch, channel)
            except BaseException as exc:
                for group in batch:
                    self._joining.pop(group, None)
                if not done.done():
                    done.set_exception(exc if isinstance(exc, Exception) else ConnectionError("join cancelled"))
                    done.exception()  # retrieved: every waiter sees it, none may be left
                if not isinstance(exc, Exception):
                    raise
                continue
            for group in batch:
                self._joining.pop(group, None)
            if channel == self.channel:
                self._subscribed |= batch
                transport.watch_reconnects(self._layer_reconnected)
            if not done.done():
                done.set_result(None)

    def _layer_reconnected(self) -> None:
        """The layer's subscriber connection came back after a drop: whatever was published
        meanwhile is lost, however quickly it came back, so heal at once."""
        if self.channel is not None:
            log.warning("channel layer reconnected; local sockets will catch up from the database")
            self.healthy = False
            self._wake.set()

    async def leave(self, socket: HubSocket, groups: "list[str] | tuple[str, ...]") -> None:
        """No layer command: a group left without sockets is unsubscribed after
        IDLE_SECONDS (in a batch), or with the channel when the last socket goes."""
        self._forget(socket, groups)
        if not self.members and self.channel is not None:
            async with self._lock:
                if not self.members and self.channel is not None:
                    await self._stop()

    def sockets(self, group: str) -> "tuple[HubSocket, ...]":
        """The local sockets of a group."""
        members = self.members.get(group)
        if members is None:
            return ()
        return tuple(members) if isinstance(members, set) else (members,)

    def _add(self, group: str, socket: HubSocket) -> None:
        members = self.members.get(group)
        if members is None:
            self.members[group] = socket
        elif isinstance(members, set):
            members.add(socket)
        elif members is not socket:
            self.members[group] = {members, socket}

    def _forget(self, socket: HubSocket, groups) -> None:
        now = time.monotonic()
        for group in groups:
            members = self.members.get(group)
            if isinstance(members, set):
                members.discard(socket)
                if len(members) > 1:
                    continue
                if members:
                    self.members[group] = next(iter(members))
                    continue
            elif members is not socket:
                continue
            del self.members[group]
            self._idle[group] = now

    async def _leave_idle(self, older_than: float) -> None:
        """Unsubscribe the groups without sockets for longer than older_than seconds."""
        cutoff = time.monotonic() - older_than
        gone = {g for g, since in self._idle.items() if since <= cutoff and g in self._subscribed}
        if not gone:
            return
        # Forgotten before the command: a join meanwhile queues its own subscribe, which
        # reaches the same Redis connection after this unsubscribe.
        for group in gone:
            del self._idle[group]
        self._subscribed -= gone
        try:
            await transport.hub_leave(gone, self.channel)
        except Exception as exc:
            log.warning("could not leave %d idle groups: %s", len(gone), exc)

    async def _stop(self) -> None:
        # Forget the channel before waiting: the wait can be cancelled (daphne cancels an
        # application that takes too long to close, as in a connection storm), and a hub
        # left holding a channel whose receive loop is gone would never deliver again, nor
        # let a socket join a new group (the layer has dropped the channel).
        channel, tasks, self._tasks, self.channel = self.channel, self._tasks, [], None
        groups, self._subscribed, self._idle = self._subscribed | set(self._joining), set(), {}
        if self._queued_done is not None and not self._queued_done.done():
            self._queued_done.set_exception(ConnectionError("the hub stopped"))
            self._queued_done.exception()
        self._joining, self._queued, self._queued_done = {}, set(), None
        for task in tasks:
            task.cancel()
        # Shielded: if this wait is cancelled too, the tasks are not cancelled again in
        # their clean-up (channels-redis's receive unsubscribes there, and logs an ERROR
        # when cancelled a second time).
        await asyncio.shield(asyncio.gather(*tasks, return_exceptions=True))
        if groups:
            try:
                await transport.hub_leave(groups, channel)
            except Exception as exc:
                log.warning("could not leave %d groups: %s", len(groups), exc)

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
        sockets = self.sockets(message.get("group", ""))
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
            await self._leave_idle(IDLE_SECONDS)
            if await self._probe(timeout=timeout):
                if not self.healthy:
                    await self._heal()
                elif n % rejoin_every == 0:
                    await self._rejoin()
            elif self.healthy:
                self.healthy = False
                log.error("channel layer stopped delivering; local sockets will catch up when it returns")

    async def _rejoin(self) -> bool:
        try:
            await transport.hub_join(set(self._subscribed), self.channel)
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
        sockets = {s for group in self.members for s in self.sockets(group)}
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
