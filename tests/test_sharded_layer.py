"""Two Redis servers under one daphne (REDIS_URL lists both, realtime.layers): one of
them killed affects only the groups on it; pushes to groups on the other keep flowing,
and sockets whose groups live on the killed one catch up when it returns (0 lost)."""

import asyncio
import os

import pytest

from tests.conftest import Daphne, live_database_url, session_cookie_for
from tests.faults import PrivateRedis, Pusher, Tab, figure, tally, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def two_redis():
    servers = [PrivateRedis().start(), PrivateRedis().start()]
    yield servers
    for server in servers:
        server.cleanup()


def stream_ids(user) -> set[int]:
    from inform.selectors import stream

    return set(stream(user).values_list("id", flat=True))


def test_one_redis_server_down_affects_only_its_groups(two_redis, make_user):
    a, b = two_redis
    prefix = f"shard{os.getpid()}"
    env = {**os.environ, "DATABASE_URL": live_database_url(), "REDIS_URL": f"{a.url},{b.url}",
           "CHANNEL_LAYER_PREFIX": prefix, "INFORM_HUB_PROBE_INTERVAL": "0.5"}
    users = [make_user(f"s{i}") for i in range(12)]
    server = Daphne(env, name="sharded").start()
    pusher = Pusher(env, "--serve")
    tabs: list[Tab] = []
    try:
        for user in users:
            tab = Tab(server.url, session_cookie_for(user), reconnect=False, name=user.username)
            tab.user = user
            tab.start()
            tabs.append(tab)
        for tab in tabs:
            assert tab.ready.wait(15) and tab.failure is None, tab.failure

        # Where each user's group lives, as the Redis servers themselves report it.
        def group_on(server: PrivateRedis, user) -> bool:
            return f"{prefix}__group__user.{user.pk}" in server.channels()

        wait_until(lambda: all(group_on(a, u) or group_on(b, u) for u in users), 10, "every group subscribed")
        on_a = [t for t in tabs if group_on(a, t.user)]
        on_b = [t for t in tabs if group_on(b, t.user)]
        assert on_a and on_b and len(on_a) + len(on_b) == len(tabs), "groups spread over both servers"

        def push_all(n: int) -> None:
            for tab in tabs:
                pusher.push(tab.user.username, n)

        def holds_stream(group: list[Tab]) -> bool:
            return all(t.snapshot() == stream_ids(t.user) for t in group)

        push_all(2)
        wait_until(lambda: holds_stream(tabs), 15, "every socket to get the first pushes")

        b.kill()
        push_all(3)
        # Groups on the live server do not notice: their pushes arrive at once.
        wait_until(lambda: holds_stream(on_a), 15, "sockets on the live server to get pushes made during the outage")
        missing_on_b = sum(len(stream_ids(t.user) - t.snapshot()) for t in on_b)

        b.start()  # back, and empty
        push_all(1)
        wait_until(lambda: holds_stream(tabs), 30, "sockets on the returned server to catch up")
        expected = {t: stream_ids(t.user) for t in tabs}
        numbers = tally(tabs, expected)
        figure("one of two Redis servers killed", **numbers, groups_on_a=len(on_a), groups_on_b=len(on_b),
               missing_on_b_during_outage=missing_on_b)
        assert numbers["lost"] == 0 and numbers["duplicated"] == 0 and numbers["extra"] == 0
        assert all(not t.closed.is_set() for t in tabs), "sockets stayed open"
    finally:
        for tab in tabs:
            tab.stopping.set()
        for tab in tabs:
            tab.join(10)
        pusher.kill()
        server.stop()


@pytest.mark.asyncio
async def test_many_pushes_at_once_reach_every_group_in_order_over_both_servers(two_redis):
    """group_send_many (one pipeline of PUBLISHes per server): 40 groups spread over two
    Redis servers, three messages each, all arrive, each group's in the order sent."""
    from realtime.layers import ShardedPubSubChannelLayer

    a, b = two_redis
    layer = ShardedPubSubChannelLayer(hosts=[a.url, b.url], prefix=f"many{os.getpid()}")
    try:
        channel = await layer.new_channel("hub.")
        groups = [f"user.{i}" for i in range(40)]
        inner = layer._get_layer()
        await inner.group_add_many(groups, channel)
        on = {id(inner._get_shard(inner._get_group_channel_name(g))) for g in groups}
        assert len(on) == 2, "the groups spread over both servers"
        await inner.group_send_many([(g, {"type": "x", "group": g, "n": n}) for n in range(3) for g in groups])
        got = [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(len(groups) * 3)]
        by_group: dict = {}
        for message in got:
            by_group.setdefault(message["group"], []).append(message["n"])
        assert by_group == {g: [0, 1, 2] for g in groups}
    finally:
        await layer.flush()


def test_pushes_from_a_sync_thread_reach_every_group_in_order_over_both_servers(two_redis):
    """group_send_many_blocking (sync code outside an event loop publishes from its own
    thread with redis-py's sync client): 40 groups over two servers, three messages
    each, from two threads at once; a subscriber gets all of them, each group's in order,
    with channels-redis's own serializer."""
    import threading

    from realtime.layers import ShardedPubSubChannelLayer

    a, b = two_redis
    layer = ShardedPubSubChannelLayer(hosts=[a.url, b.url], prefix=f"sync{os.getpid()}")
    groups = [f"user.{i}" for i in range(40)]

    async def receive_all(subscribed: threading.Event) -> list:
        channel = await layer.new_channel("hub.")
        await layer._get_layer().group_add_many(groups, channel)
        subscribed.set()
        try:
            return [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(len(groups) * 3)]
        finally:
            await layer.flush()

    def send(half: list[str]) -> None:
        for n in range(3):
            assert layer.group_send_many_blocking([(g, {"type": "x", "group": g, "n": n}) for g in half])

    subscribed, got = threading.Event(), []
    receiver = threading.Thread(target=lambda: got.extend(asyncio.run(receive_all(subscribed))))
    receiver.start()
    assert subscribed.wait(10)
    senders = [threading.Thread(target=send, args=(groups[i::2],)) for i in range(2)]
    for t in senders:
        t.start()
    for t in senders + [receiver]:
        t.join(15)
    on = {layer._sync_publisher()[1](f"sync{os.getpid()}__group__{g}") for g in groups}
    assert on == {0, 1}, "the groups spread over both servers"
    by_group: dict = {}
    for message in got:
        by_group.setdefault(message["group"], []).append(message["n"])
    assert by_group == {g: [0, 1, 2] for g in groups}
