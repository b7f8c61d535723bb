"""Load shedding (realtime.shed): past the per-process caps a new socket is told to come
back later (error frame `overloaded` with retry_after, close 4503 "retry after N"), and
sockets within the caps are untouched."""

import asyncio
import json

import pytest
from channels.testing import WebsocketCommunicator
from prometheus_client import REGISTRY

from realtime.shed import CLOSE_RETRY_AFTER, LoadShedMiddleware

pytestmark = pytest.mark.asyncio


class SlowApp:
    """Accepts a socket only when told to (a handshake that is still in progress)."""

    def __init__(self):
        self.go = asyncio.Event()

    async def __call__(self, scope, receive, send):
        assert (await receive())["type"] == "websocket.connect"
        await self.go.wait()
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass


async def shed_answer(comm: WebsocketCommunicator) -> tuple[dict, dict]:
    connected, _ = await comm.connect(timeout=3)
    assert connected
    frame = json.loads(await comm.receive_from(timeout=3))
    close = await comm.receive_output(timeout=3)
    return frame, close


def overloaded() -> float:
    return REGISTRY.get_sample_value("realtime_server_closes_total", {"reason": "overloaded"}) or 0.0


async def test_handshakes_in_progress_past_the_cap_are_told_to_retry(settings):
    settings.WS_MAX_PENDING_HANDSHAKES, settings.WS_MAX_SOCKETS_PER_PROCESS = 2, 0
    settings.WS_RETRY_AFTER_SECONDS = 4.0
    app = SlowApp()
    shed = LoadShedMiddleware(app)
    before = overloaded()
    slow = [WebsocketCommunicator(shed, "/ws/x/") for _ in range(2)]
    connecting = [asyncio.ensure_future(c.connect(timeout=5)) for c in slow]
    while shed.pending < 2:
        await asyncio.sleep(0.01)

    frame, close = await shed_answer(WebsocketCommunicator(shed, "/ws/x/"))
    assert frame["type"] == "error" and frame["code"] == "overloaded" and 2.0 <= frame["retry_after"] <= 6.0
    assert close == {"type": "websocket.close", "code": CLOSE_RETRY_AFTER, "reason": f"retry after {frame['retry_after']}"}
    assert overloaded() == before + 1

    app.go.set()  # the slow handshakes finish: they were never affected
    assert all(connected for connected, _ in await asyncio.gather(*connecting))
    assert shed.pending == 0 and shed.open == 2
    late = WebsocketCommunicator(shed, "/ws/x/")
    assert (await late.connect(timeout=3))[0]  # room again
    for c in [*slow, late]:
        await c.disconnect()
    assert shed.open == 0


async def test_open_sockets_past_the_cap_are_told_to_retry(settings):
    settings.WS_MAX_PENDING_HANDSHAKES, settings.WS_MAX_SOCKETS_PER_PROCESS = 0, 1
    app = SlowApp()
    app.go.set()
    shed = LoadShedMiddleware(app)
    first = WebsocketCommunicator(shed, "/ws/x/")
    assert (await first.connect(timeout=3))[0]
    frame, close = await shed_answer(WebsocketCommunicator(shed, "/ws/x/"))
    assert frame["code"] == "overloaded" and close["code"] == CLOSE_RETRY_AFTER
    await first.disconnect()
    second = WebsocketCommunicator(shed, "/ws/x/")
    assert (await second.connect(timeout=3))[0]
    await second.disconnect()


async def test_a_storm_of_shed_sockets_is_sent_back_spread_at_the_accept_rate(settings):
    """A fixed retry_after would send a whole storm back at once, to be shed again: each
    shed socket gets the next slot at the rate the process accepts (here, before any
    accept was measured: WS_MAX_PENDING_HANDSHAKES per WS_RETRY_AFTER_SECONDS, 2/s)."""
    settings.WS_MAX_PENDING_HANDSHAKES, settings.WS_MAX_SOCKETS_PER_PROCESS = 2, 0
    settings.WS_RETRY_AFTER_SECONDS = 1.0
    app = SlowApp()
    shed = LoadShedMiddleware(app)
    slow = [WebsocketCommunicator(shed, "/ws/x/") for _ in range(2)]
    connecting = [asyncio.ensure_future(c.connect(timeout=5)) for c in slow]
    while shed.pending < 2:
        await asyncio.sleep(0.01)
    waits = [(await shed_answer(WebsocketCommunicator(shed, "/ws/x/")))[0]["retry_after"] for _ in range(10)]
    assert 0.5 <= waits[0] <= 1.5
    assert waits == sorted(waits) and len(set(waits)) == 10
    assert waits[-1] >= 0.5 + 9 * 0.5 - 0.5  # ten sockets at 2/s: spread over about 4.5 s
    app.go.set()
    await asyncio.gather(*connecting)
    for c in slow:
        await c.disconnect()
