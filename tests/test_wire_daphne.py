"""The direct write path of realtime.wire under a real daphne, with the clients browsers
are: WebSocket compression offered (Chromium offers permessage-deflate) or not."""

import asyncio
import json

import pytest
import websockets
from asgiref.sync import sync_to_async

from inform.services import send_inform

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


async def _open(url: str, compression):
    ws = await websockets.connect(
        url.replace("http://", "ws://") + "/ws/inform/", origin=url, compression=compression, open_timeout=5
    )
    await ws.send(json.dumps({"type": "sync", "after": 0}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["code"] == "unauthenticated"
    return ws


def test_every_connection_with_or_without_compression_opens_and_gets_broadcasts(live_url):
    async def scenario():
        sockets = [await _open(live_url, c) for c in ["deflate", None, "deflate", None, "deflate"]]
        try:
            await sync_to_async(send_inform)(everyone=True, verb="site_update", text="wire check")
            for ws in sockets:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert (frame["type"], frame["event"], frame["text"]) == ("feed", "site_update", "wire check")
        finally:
            for ws in sockets:
                await ws.close()

    asyncio.run(scenario())
