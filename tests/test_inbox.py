"""realtime.wire.Inbox and SendQueue: what replace daphne's per-connection asyncio.Queue
and autobahn's send queue once a socket is open (memory per idle socket). The same order
and hand-over as what they replace."""

import asyncio

from realtime.wire import Inbox


def test_messages_come_out_in_the_order_they_were_put_waiting_or_not():
    async def ordered():
        inbox = Inbox([{"n": 1}])
        got = [(await inbox.get())["n"]]
        getter = inbox.get()
        assert not getter.done()
        inbox.put_nowait({"n": 2})
        inbox.put_nowait({"n": 3})
        got.append((await getter)["n"])
        inbox.put_nowait({"n": 4})
        got += [(await inbox.get())["n"], (await inbox.get())["n"]]
        assert inbox._items is None and inbox._waiter is None  # idle: nothing held
        return got

    assert asyncio.run(ordered()) == [1, 2, 3, 4]


def test_a_cancelled_get_loses_no_message():
    async def scenario():
        inbox = Inbox()
        task = asyncio.ensure_future(asyncio.wait_for(inbox.get(), 0.01))
        try:
            await task
        except TimeoutError:
            pass
        inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
        return await inbox.get()

    assert asyncio.run(scenario()) == {"type": "websocket.disconnect", "code": 1000}


def test_the_send_queue_acts_as_autobahns_deque_and_holds_nothing_until_used():
    from realtime.wire import SendQueue

    queue = SendQueue()
    assert len(queue) == 0 and not queue and queue._queue is None
    queue.append((b"a", True))
    queue.append((b"b", False))
    assert len(queue) == 2 and queue
    assert queue.popleft() == (b"a", True) and queue.popleft() == (b"b", False)
    assert not queue
    try:
        queue.popleft()
    except IndexError:
        pass
    else:
        raise AssertionError("popleft() of an empty queue must raise IndexError, as a deque does")
