"""The process hub stays usable when stopping it is cancelled half-way.

Found by the fan-out benchmark (docs/performance.md): in a connection storm daphne
cancels consumers that take too long to close; a cancelled last leave() left the hub
holding a layer channel whose receive loop was gone, and every later socket of the
process failed to join ("You can only call group_add() on channels that exist
in-process") or silently received nothing.
"""

import asyncio

from realtime.hub import Hub
from tests.fakes import FakeSocket


async def test_cancelled_stop_leaves_a_hub_that_restarts():
    hub = Hub()
    first = FakeSocket()
    await hub.join(first, ["site"])
    old_channel = hub.channel
    assert old_channel is not None

    # A task that takes a while to stop, so that leave() is still waiting when cancelled.
    async def slow_to_stop():
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await asyncio.sleep(30)

    slow = asyncio.create_task(slow_to_stop())
    hub._tasks.append(slow)
    leaving = asyncio.create_task(hub.leave(first, ["site"]))
    for _ in range(50):
        await asyncio.sleep(0.01)
        if slow.cancelling():  # leave() reached _stop() and is waiting for the tasks
            break
    leaving.cancel()
    await asyncio.gather(leaving, return_exceptions=True)
    slow.cancel()
    await asyncio.gather(slow, return_exceptions=True)

    assert hub.channel is None, "a cancelled stop must not leave a dead channel behind"

    second = FakeSocket()
    await hub.join(second, ["site", "user.987654"])  # new groups: group_add must work
    assert hub.channel is not None and hub.channel != old_channel
    await hub.leave(second, ["site", "user.987654"])


async def test_a_cancelled_stop_lets_the_receive_loop_finish_its_clean_up():
    """Daphne cancels consumers that take too long to close, and all of them when it
    shuts down. If the last one's leave() is cancelled while the hub waits for its
    receive loop, that loop must not be cancelled a second time in its own clean-up:
    channels-redis's receive unsubscribes there and logs an ERROR when cancelled again
    (seen in a CI run's daphne log)."""
    hub = Hub()
    socket = FakeSocket()
    await hub.join(socket, ["site"])
    cancels = []

    async def receive_like_channels_redis():
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancels.append("first")
            try:
                await asyncio.sleep(0.2)  # unsubscribing, waiting for the shard's lock
            except asyncio.CancelledError:
                cancels.append("again")
            raise

    receiving = asyncio.create_task(receive_like_channels_redis())
    hub._tasks.append(receiving)
    leaving = asyncio.create_task(hub.leave(socket, ["site"]))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if cancels:
            break
    leaving.cancel()
    await asyncio.gather(leaving, receiving, return_exceptions=True)
    assert cancels == ["first"]
    assert hub.channel is None
