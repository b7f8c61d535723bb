"""realtime.transport from sync code outside an event loop (a worker, a command, a
script): the sharded Redis layer publishes from the caller's thread; other layers go
through the sender loop. Real Redis servers."""

import asyncio
import os
import threading
import time

import pytest
from django.conf import settings as django_settings

from realtime import transport
from realtime.layers import ShardedPubSubChannelLayer
from tests.faults import PrivateRedis


def subscribe(layer, group: str, got: list, ready: threading.Event, timeout: float) -> threading.Thread:
    """A subscriber of `group` in a thread of its own; collects messages into `got`."""

    async def run():
        channel = await layer.new_channel("hub.")
        await layer.group_add(group, channel)
        ready.set()
        try:
            got.append(await asyncio.wait_for(layer.receive(channel), timeout))
        finally:
            await layer.flush()

    thread = threading.Thread(target=lambda: asyncio.run(run()))
    thread.start()
    return thread


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs the Redis the tests run with")
def test_channels_redis_pubsub_layer_still_gets_pushes_from_sync_code(settings):
    """A layer without the blocking publisher (channels-redis's own pub/sub layer, whose
    attribute lookups need a running loop) still gets the push, through the loop."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                                           "CONFIG": {"hosts": [os.environ["REDIS_URL"].split(",")[0]],
                                                      "prefix": f"plain{os.getpid()}"}}}
    from channels.layers import channel_layers, get_channel_layer

    channel_layers.backends.clear()
    try:
        got, ready = [], threading.Event()
        thread = subscribe(get_channel_layer(), "user.1", got, ready, timeout=5)
        assert ready.wait(10)
        transport.group_send("user.1", {"frame": {"n": 1}}, after_commit=False)
        thread.join(10)
        assert [m["frame"] for m in got] == [{"n": 1}]
    finally:
        channel_layers.backends.clear()


def test_a_hung_redis_holds_a_sync_sender_no_longer_than_the_send_timeout(monkeypatch):
    """Redis stops answering (SIGSTOP): the push is given up (clients catch up on sync)
    within transport's send timeout, as it was through the sender loop, instead of one
    socket timeout per retry."""
    redis = PrivateRedis().start()
    try:
        host = dict(django_settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0]) \
            if "hosts" in django_settings.CHANNEL_LAYERS["default"].get("CONFIG", {}) else {}
        layer = ShardedPubSubChannelLayer(hosts=[{**host, "address": redis.url}], prefix=f"hang{os.getpid()}")
        monkeypatch.setattr(transport, "get_channel_layer", lambda: layer)
        transport.group_send("user.4", {"frame": {"n": 0}}, after_commit=False)  # connected
        redis.pause()
        start = time.monotonic()
        transport.group_send("user.4", {"frame": {"n": 1}}, after_commit=False)
        assert time.monotonic() - start < transport._SEND_TIMEOUT + 1
    finally:
        redis.resume()
        redis.cleanup()
