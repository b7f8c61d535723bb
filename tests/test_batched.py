"""realtime.batched: reads that many sockets make at once are one trip to the database
thread per batch (a reconnect storm's syncs, docs/scaling.md)."""

import asyncio

import pytest

from realtime.batched import Batched

pytestmark = pytest.mark.asyncio


async def test_calls_made_together_are_one_call_per_batch_each_with_its_own_answer():
    calls = []

    def double(args):
        calls.append(list(args))
        return [a * 2 for a in args]

    batched = Batched(double, limit=3)
    assert await asyncio.gather(*(batched(i) for i in range(5))) == [0, 2, 4, 6, 8]
    assert calls == [[0, 1, 2], [3, 4]]
    assert await batched(7) == 14  # later calls start a new batch
    assert calls[-1] == [7]


async def test_a_failed_batch_fails_each_of_its_calls_and_the_next_batch_runs():
    def many(args):
        if "bad" in args:
            raise ValueError("no")
        return args

    batched = Batched(many)
    results = await asyncio.gather(batched("a"), batched("bad"), return_exceptions=True)
    assert [type(r) for r in results] == [ValueError, ValueError]
    assert await batched("b") == "b"


async def test_a_cancelled_call_leaves_the_others_of_its_batch_answered():
    batched = Batched(lambda args: args)
    first, second = asyncio.ensure_future(batched(1)), asyncio.ensure_future(batched(2))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == 2
    assert first.cancelled()
