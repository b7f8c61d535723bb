"""Groups spread over several Redis servers (realtime.layers): how many move when a
server is added, and that REDIS_URL names the list."""

import json
import os
import subprocess
import sys

import pytest
from channels_redis.utils import _consistent_hash

from realtime.layers import rendezvous, shard_key
from tests.conftest import ROOT
from tests.faults import figure

NAMES = [f"mblog__group__user.{i}" for i in range(20000)] + [f"mblog__group__room.{i}" for i in range(2000)]
KEYS = tuple(f"10.0.0.{i}:6379" for i in range(1, 7))


def moved(assign, n: int) -> float:
    return sum(1 for name in NAMES if assign(name, n) != assign(name, n + 1)) / len(NAMES)


def ours(name: str, n: int) -> int:
    return rendezvous(name, KEYS[:n])


def test_adding_a_server_moves_only_the_share_it_takes():
    for n in range(1, 5):
        stock, mine = moved(_consistent_hash, n), moved(ours, n)
        figure(f"groups moved going from {n} to {n + 1} Redis servers", channels_redis=f"{stock:.3f}",
               rendezvous=f"{mine:.3f}", ideal=f"{1 / (n + 1):.3f}")
        # the bucket split moves about half (after the first step, far more than needed)
        if n >= 2:
            assert stock > 1.4 / (n + 1)
        assert mine < 1.1 / (n + 1)
        # and every group that moved went to the new server
        assert all(ours(name, n + 1) == n for name in NAMES if ours(name, n) != ours(name, n + 1))


def test_groups_spread_evenly_and_the_list_order_does_not_matter():
    for n in range(2, 6):
        counts = [0] * n
        for name in NAMES:
            counts[rendezvous(name, KEYS[:n])] += 1
        assert max(counts) < 1.1 * len(NAMES) / n and min(counts) > 0.9 * len(NAMES) / n
    reversed_keys = tuple(reversed(KEYS[:4]))
    assert all(KEYS[:4][rendezvous(name, KEYS[:4])] == reversed_keys[rendezvous(name, reversed_keys)]
               for name in NAMES[:2000])


def test_a_server_is_known_by_host_and_port_only():
    assert shard_key({"address": "redis://:secret@10.0.0.1:6380/7"}) == "10.0.0.1:6380"
    assert shard_key({"address": "redis://10.0.0.1/0"}) == "10.0.0.1:6379"
    assert shard_key({"host": "h", "port": 1}) == "h:1"


@pytest.mark.slow  # starts Django in a process of its own
def test_redis_url_may_name_several_servers():
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0, redis://127.0.0.1:2/0", "DJANGO_SETTINGS_MODULE": "mblog.settings"}
    code = ("import django, json; django.setup(); from django.conf import settings as s; "
            "c = s.CHANNEL_LAYERS['default']; print(json.dumps([c['BACKEND'], [h['address'] for h in c['CONFIG']['hosts']],"
            " s.CACHES['default']['LOCATION']]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    backend, hosts, cache = json.loads(out.stdout.strip().splitlines()[-1])
    assert backend == "realtime.layers.ShardedPubSubChannelLayer"
    assert hosts == ["redis://127.0.0.1:1/0", "redis://127.0.0.1:2/0"]
    assert cache == "redis://127.0.0.1:1/0"


@pytest.mark.asyncio
async def test_group_members_one_channel_or_several_over_real_redis():
    """A group of one local channel shares one frozenset with every such group (memory per
    socket); a second channel makes it a set; every member hears the group until it
    leaves, and the last leave unsubscribes."""
    import asyncio

    from channels.layers import get_channel_layer

    from realtime.layers import ShardedPubSubChannelLayer

    layer = get_channel_layer()
    if not isinstance(layer, ShardedPubSubChannelLayer):
        pytest.skip("needs the Redis layer (bin/test)")
    a, b = await layer.new_channel(), await layer.new_channel()
    loop_layer = layer._get_layer()
    try:
        await layer.group_add("g1", a)
        await layer.group_add("g2", a)
        g1, g2 = (loop_layer._get_group_channel_name(g) for g in ("g1", "g2"))
        assert loop_layer.groups[g1] == frozenset({a}) and loop_layer.groups[g1] is loop_layer.groups[g2]
        await layer.group_add("g1", b)
        assert loop_layer.groups[g1] == {a, b} and loop_layer.groups[g2] == frozenset({a})
        await layer.group_send("g1", {"type": "x", "n": 1})
        assert (await asyncio.wait_for(layer.receive(a), 5))["n"] == 1
        assert (await asyncio.wait_for(layer.receive(b), 5))["n"] == 1
        await layer.group_discard("g1", a)
        await layer.group_send("g1", {"type": "x", "n": 2})
        assert (await asyncio.wait_for(layer.receive(b), 5))["n"] == 2
        await layer.group_discard("g1", b)
        await layer.group_discard("g2", a)
        assert g1 not in loop_layer.groups and g2 not in loop_layer.groups
        shard = loop_layer._get_shard(g1)
        assert g1 not in shard._subscribed_to
    finally:
        await layer.flush()
