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
from functools import lru_cache
from urllib.parse import urlsplit

from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer
from channels_redis.utils import _wrap_close


def _weight(name: str, key: str) -> int:
    digest = hashlib.blake2b(f"{key}\0{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rendezvous(name: str, keys: "tuple[str, ...]") -> int:
    """Index of the key that name belongs to: the one with the highest weight."""
    if len(keys) == 1:
        return 0
    return max(range(len(keys)), key=lambda i: _weight(name, keys[i]))


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
        keys = tuple(shard_key(shard.host) for shard in self._shards)
        # Publishing hashes the group name on every send: remember recent answers.
        self._shard_index = lru_cache(maxsize=65536)(lambda name: rendezvous(name, keys))

    def _get_shard(self, channel_or_group_name):
        return self._shards[self._shard_index(channel_or_group_name)]


class ShardedPubSubChannelLayer(RedisPubSubChannelLayer):
    """RedisPubSubChannelLayer with rendezvous hashing over its hosts (one loop layer per
    event loop, as the original)."""

    def _get_layer(self):
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = self._layers[loop] = RendezvousLoopLayer(*self._args, **self._kwargs, channel_layer=self)
            _wrap_close(self, loop)
        return layer
