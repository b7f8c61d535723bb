"""The Redis pub/sub channel layer over several Redis servers, with a stable hash.

channels-redis spreads names over its host list by cutting crc32(name) & 0xFFF into
equal contiguous ranges, so adding a server to N moves about half of all groups to
another server (each moved group costs every process a re-subscribe and a catch-up).
Rendezvous hashing (highest random weight) moves only the 1/(N+1) that the new server
takes, and keys on each server's address, so the order of the list does not matter.
Every process must name the same set of servers.
"""

import asyncio
import hashlib
import os
import threading
from collections import defaultdict
from functools import lru_cache
from urllib.parse import urlsplit

import redis
from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer
from channels_redis.utils import _wrap_close, decode_hosts
from redis.asyncio.retry import Retry as AsyncRetry
from redis.retry import Retry


def _weight(name: str, key: str) -> int:
    digest = hashlib.blake2b(f"{key}\0{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rendezvous(name: str, keys: "tuple[str, ...]") -> int:
    """Index of the key that name belongs to: the one with the highest weight."""
    if len(keys) == 1:
        return 0
    return max(range(len(keys)), key=lambda i: _weight(name, keys[i]))


def shard_chooser(keys: "tuple[str, ...]"):
    """name -> index of its server among `keys`. Publishing hashes the group name on every
    send: recent answers are remembered (with more than one server; with one there is
    nothing to hash)."""
    if len(keys) == 1:
        return lambda name: 0
    return lru_cache(maxsize=65536)(lambda name: rendezvous(name, keys))


def shard_key(host: dict) -> str:
    """What identifies a server: host:port, not its list position, nor its password or
    database number (pub/sub channels are server-wide)."""
    if "address" in host:
        url = urlsplit(str(host["address"]))
        return f"{url.hostname}:{url.port or 6379}"
    return f"{host.get('host', 'localhost')}:{host.get('port', 6379)}"


class RendezvousLoopLayer(RedisPubSubLoopLayer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._last_only: frozenset = frozenset()
        self._shard_index = shard_chooser(tuple(shard_key(shard.host) for shard in self._shards))

    def _get_shard(self, channel_or_group_name):
        return self._shards[self._shard_index(channel_or_group_name)]

    # group_add/group_discard for many groups at once: one SUBSCRIBE or UNSUBSCRIBE per
    # server instead of one command (and one turn of the shard's lock) per group. The
    # process hub joins and leaves its groups in batches (realtime.hub).
    #
    # A group with one local channel (with the process hub: every group) holds a frozenset
    # of it, the same object for every such group of that channel, instead of a set per
    # group (a user's group and a session's group per signed-in socket: memory per
    # socket); a group of more channels holds a set. The receiver only iterates over it.

    async def group_add(self, group, channel):
        await self.group_add_many([group], channel)

    async def group_discard(self, group, channel):
        await self.group_discard_many([group], channel)

    def _only(self, channel: str) -> frozenset:
        if channel not in self._last_only:
            self._last_only = frozenset((channel,))
        return self._last_only

    async def group_add_many(self, groups, channel) -> None:
        if channel not in self.channels:
            raise RuntimeError("group_add_many() is for channels that exist in-process")
        by_shard = defaultdict(list)
        for group in groups:
            name = self._get_group_channel_name(group)
            members = self.groups.get(name)
            if members is None:
                self.groups[name] = self._only(channel)
            elif channel not in members:
                self.groups[name] = set(members) | {channel}
            by_shard[self._get_shard(name)].append(name)
        await asyncio.gather(*(_subscribe(shard, names) for shard, names in by_shard.items()))

    async def group_discard_many(self, groups, channel) -> None:
        by_shard = defaultdict(list)
        for group in groups:
            name = self._get_group_channel_name(group)
            members = self.groups.get(name)
            if members is None or channel not in members:
                continue
            if isinstance(members, set):
                members.discard(channel)
            if not isinstance(members, set) or not members:
                del self.groups[name]
                by_shard[self._get_shard(name)].append(name)
        await asyncio.gather(*(_unsubscribe(shard, names) for shard, names in by_shard.items()))


    async def group_send_many(self, messages) -> None:
        """group_send for many (group, message) pairs: one pipeline of PUBLISHes per
        server, in order, instead of a round trip (and a turn of the shard's lock) each."""
        by_shard = defaultdict(list)
        for group, message in messages:
            name = self._get_group_channel_name(group)
            by_shard[self._get_shard(name)].append((name, self.channel_layer.serialize(message)))
        await asyncio.gather(*(_publish(shard, items) for shard, items in by_shard.items()))


_BATCH = 1000  # channel names per command


async def _publish(shard, items: list) -> None:
    """channels-redis's RedisSingleShardConnection.publish, for many messages."""
    async with shard._lock:
        shard._ensure_redis()
        async with shard._redis.pipeline(transaction=False) as pipe:
            for name, data in items:
                pipe.publish(name, data)
            await pipe.execute()


async def _subscribe(shard, names: list) -> None:
    """channels-redis's RedisSingleShardConnection.subscribe, for many names."""
    async with shard._lock:
        new = [n for n in dict.fromkeys(names) if n not in shard._subscribed_to]
        if not new:
            return
        shard._ensure_redis()
        shard._ensure_receiver()
        for i in range(0, len(new), _BATCH):
            await shard._pubsub.subscribe(*new[i : i + _BATCH])
            shard._subscribed_to.update(new[i : i + _BATCH])


async def _unsubscribe(shard, names: list) -> None:
    async with shard._lock:
        gone = [n for n in dict.fromkeys(names) if n in shard._subscribed_to]
        if not gone:
            return
        shard._ensure_redis()
        shard._ensure_receiver()
        for i in range(0, len(gone), _BATCH):
            await shard._pubsub.unsubscribe(*gone[i : i + _BATCH])
            shard._subscribed_to.difference_update(gone[i : i + _BATCH])


class ShardedPubSubChannelLayer(RedisPubSubChannelLayer):
    """RedisPubSubChannelLayer with rendezvous hashing over its hosts (one loop layer per
    event loop, as the original)."""

    _publisher: "tuple[int, list[redis.Redis] | None, object] | None" = None
    _publisher_lock = threading.Lock()

    def group_send_many_blocking(self, messages) -> bool:
        """group_send_many for sync code outside an event loop (a worker, a command, a
        script): from the calling thread, with redis-py's thread-safe sync client, one
        pipeline of PUBLISHes per server. Handing each push to an event loop in another
        thread cost the sender more CPU than the PUBLISH itself (docs/performance.md).
        False (nothing sent) for hosts given other than by address: the caller uses the
        loop instead."""
        clients, shard_of = self._sync_publisher()
        if clients is None:
            return False
        prefix = self._kwargs.get("prefix", "asgi")
        by_client = defaultdict(list)
        for group, message in messages:
            name = f"{prefix}__group__{group}"  # RedisPubSubLoopLayer._get_group_channel_name
            by_client[clients[shard_of(name)]].append((name, self.serialize(message)))
        for client, items in by_client.items():
            with client.pipeline(transaction=False) as pipe:
                for name, data in items:
                    pipe.publish(name, data)
                pipe.execute()
        return True

    def _sync_publisher(self):
        with self._publisher_lock:
            if self._publisher is None or self._publisher[0] != os.getpid():
                hosts = decode_hosts(self._kwargs.get("hosts"))
                if not all("address" in host for host in hosts):
                    self._publisher = (os.getpid(), None, None)  # asked once per process
                else:
                    shard_of = shard_chooser(tuple(shard_key(host) for host in hosts))
                    self._publisher = (os.getpid(), [_sync_client(host) for host in hosts], shard_of)
            return self._publisher[1:]

    def _get_layer(self):
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = self._layers[loop] = RendezvousLoopLayer(*self._args, **self._kwargs, channel_layer=self)
            _wrap_close(self, loop)
        return layer


def _sync_client(host: dict) -> redis.Redis:
    """redis-py's sync client for a channels-redis host entry: its options, and its retry
    policy as the sync kind, for connections that Redis closed (it restarted) only: a
    Redis that stopped answering costs one socket timeout, not one per retry. A blocking
    pool: a burst of threads waits (a socket timeout at most) for a connection instead
    of failing with "too many connections"."""
    options = dict(host)
    address = options.pop("address")
    retry = options.get("retry")
    if isinstance(retry, AsyncRetry):
        options["retry"] = Retry(retry._backoff, retry.get_retries(), (redis.ConnectionError,))
    timeout = options.get("socket_timeout") or 5.0
    return redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(address, timeout=timeout, **options))
