"""The process hub joins and leaves layer groups in batches (realtime.hub).

Found by the fleet benchmark (docs/scaling.md): in a reconnect storm each socket's
leave and join was one layer command taken in turn under the hub's lock, so returning
handshakes queued behind thousands of them past daphne's timeouts and nothing synced for
a minute. Now a storm of joins is one command per batch, a left group stays subscribed
for IDLE_SECONDS so a returning socket joins without any, and idle groups are left
together."""

import asyncio
import time

import pytest

from realtime import hub as hub_module
from realtime import transport
from realtime.hub import Hub
from tests.fakes import FakeSocket

pytestmark = pytest.mark.asyncio


async def until(predicate, what: str, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
def layer_commands(monkeypatch):
    """The real layer commands, counted: [("join" or "leave", number of groups)]."""
    calls = []
    join, leave = transport.hub_join, transport.hub_leave

    async def counted_join(groups, channel):
        calls.append(("join", len(groups)))
        await join(groups, channel)

    async def counted_leave(groups, channel):
        calls.append(("leave", len(groups)))
        await leave(groups, channel)

    monkeypatch.setattr(transport, "hub_join", counted_join)
    monkeypatch.setattr(transport, "hub_leave", counted_leave)
    return calls


async def test_a_storm_of_joins_is_a_few_layer_commands_and_every_socket_hears_its_group(layer_commands):
    hub = Hub()
    sockets = [FakeSocket() for _ in range(300)]
    await asyncio.gather(*(hub.join(s, ["site", f"user.{90000 + i}"]) for i, s in enumerate(sockets)))
    joins = [n for kind, n in layer_commands if kind == "join"]
    assert sum(joins) == 301 and len(joins) <= 3, joins
    for i in (0, 150, 299):
        await transport.agroup_send(f"user.{90000 + i}", {"frame": {"type": "x", "n": i}})
    await until(lambda: all(sockets[i].frames for i in (0, 150, 299)), "the users' pushes")
    assert sockets[150].frames == [{"type": "x", "n": 150}] and not sockets[1].frames
    for s in sockets:
        await hub.leave(s, ["site", f"user.{90000 + sockets.index(s)}"])
    assert hub.channel is None  # the last socket stopped it, leaving every group at once
    assert [kind for kind, _ in layer_commands].count("leave") == 1


async def test_a_left_group_stays_subscribed_for_a_while_then_is_left_in_a_batch(layer_commands, monkeypatch):
    hub = Hub()
    keeper, tab = FakeSocket(), FakeSocket()
    await hub.join(keeper, ["site"])
    await hub.join(tab, ["site", "user.91001", "user.91002"])
    await hub.leave(tab, ["site", "user.91001", "user.91002"])
    layer_commands.clear()
    await hub.join(tab, ["site", "user.91001"])  # a reload: back within the idle time
    assert layer_commands == []
    await transport.agroup_send("user.91001", {"frame": {"type": "again"}})
    await until(lambda: tab.frames, "the push to the returning tab")

    await hub.leave(tab, ["site", "user.91001"])
    monkeypatch.setattr(hub_module, "IDLE_SECONDS", 0.0)
    hub._wake.set()  # the probe loop leaves idle groups at its next turn
    await until(lambda: layer_commands, "the idle groups' leave")
    assert layer_commands == [("leave", 2)]
    assert hub.channel is not None and set(hub.members) == {"site"}
    await hub.leave(keeper, ["site"])


async def test_a_cancelled_join_does_not_fail_the_others_in_its_batch(layer_commands):
    """daphne cancels a handshake that takes too long; the other sockets whose groups were
    in the same layer command must still join (found by the fleet benchmark's storm)."""
    hub = Hub()
    keeper = FakeSocket()
    await hub.join(keeper, ["site"])
    sockets = [FakeSocket() for _ in range(20)]
    joins = [asyncio.ensure_future(hub.join(s, [f"user.{92000 + i}"])) for i, s in enumerate(sockets)]
    await asyncio.sleep(0)  # all queued in one batch, its command not yet answered
    joins[0].cancel()
    results = await asyncio.gather(*joins, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert results[1:] == [None] * 19
    await transport.agroup_send("user.92007", {"frame": {"type": "x"}})
    await until(lambda: sockets[7].frames, "the push to a socket of the batch")
    assert "user.92000" not in hub.members  # the cancelled socket is not left behind
    for i, s in enumerate(sockets[1:], 1):
        await hub.leave(s, [f"user.{92000 + i}"])
    await hub.leave(keeper, ["site"])


async def test_a_group_of_one_socket_then_two_then_one_hears_every_push(layer_commands):
    """A group's only socket is held without a set (memory per socket), a second makes it
    a set, and when one of two leaves the other still hears every push."""
    hub = Hub()
    first, second = FakeSocket(), FakeSocket()
    await hub.join(first, ["user.93000"])
    assert hub.members["user.93000"] is first and hub.sockets("user.93000") == (first,)
    await hub.join(first, ["user.93000"])  # joining again changes nothing
    assert hub.sockets("user.93000") == (first,)
    await hub.join(second, ["user.93000"])
    assert set(hub.sockets("user.93000")) == {first, second}
    await transport.agroup_send("user.93000", {"frame": {"type": "both"}})
    await until(lambda: first.frames and second.frames, "the push to both tabs")
    await hub.leave(first, ["user.93000"])
    assert hub.members["user.93000"] is second
    await transport.agroup_send("user.93000", {"frame": {"type": "one"}})
    await until(lambda: len(second.frames) == 2, "the push to the tab left")
    assert first.frames == [{"type": "both"}]
    await hub.leave(first, ["user.93000"])  # a second leave of the same socket: nothing
    assert hub.sockets("user.93000") == (second,)
    await hub.leave(second, ["user.93000"])
    assert "user.93000" not in hub.members and hub.channel is None
