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


def test_the_fast_path_is_taken_under_daphne(make_user):
    """The self-check passes with the locked daphne/autobahn/Twisted, and says so once."""
    import os

    from tests.conftest import Daphne, live_database_url

    server = Daphne({**os.environ, "DATABASE_URL": live_database_url()}, name="fast-path")
    earlier = server.log_path.stat().st_size if server.log_path.exists() else 0  # a log of an earlier run
    server.start()
    try:
        async def scenario():
            ws = await _open(server.url, None)
            await sync_to_async(send_inform)(everyone=True, verb="site_update", text="fast path check")
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["text"] == "fast path check"
            await ws.close()

        asyncio.run(scenario())
    finally:
        server.stop()
    log = server.log_path.read_text()[earlier:]
    assert log.count("realtime fast path on") == 1, log[-2000:]
    assert "fast path disabled" not in log


def test_a_changed_private_attribute_turns_the_fast_path_off_with_one_warning(caplog, monkeypatch):
    """What an upgrade that renames a private attribute would do: the plain ASGI send, one WARNING."""
    from realtime import wire

    class Renamed:  # a daphne connection after an upgrade that renamed everything
        pass

    monkeypatch.setattr(wire, "_fast_path", None)
    with caplog.at_level("WARNING", logger="realtime.wire"):
        assert wire.fast_path_ok(Renamed()) is False
        assert wire.fast_path_ok(Renamed()) is False
    warnings = [r for r in caplog.records if "fast path disabled" in r.getMessage()]
    assert len(warnings) == 1 and "transport.dataBuffer" in warnings[0].getMessage()


def test_trimmed_sockets_answer_pings_get_broadcasts_and_close_cleanly(make_user):
    """After realtime.wire.trim_after_handshake (Twisted's request dropped, an Inbox for
    daphne's queue, autobahn's idle state on its class): daphne's keep-alive pings are
    answered through two ping timeouts, broadcasts arrive, and sockets close cleanly from
    either side, with nothing in the server's log."""
    import os
    import time

    from tests.conftest import Daphne, live_database_url

    server = Daphne({**os.environ, "DATABASE_URL": live_database_url()}, name="trimmed",
                    args=("--ping-interval", "1", "--ping-timeout", "2"))
    earlier = server.log_path.stat().st_size if server.log_path.exists() else 0
    server.start()
    try:
        async def scenario():
            sockets = [await _open(server.url, c) for c in ["deflate", None, None]]
            # Past two ping timeouts: a ping left unanswered would have dropped the socket.
            await asyncio.sleep(5)
            await sync_to_async(send_inform)(everyone=True, verb="site_update", text="after pings")
            for ws in sockets:
                assert json.loads(await asyncio.wait_for(ws.recv(), 5))["text"] == "after pings"
            await sockets[0].send(json.dumps({"type": "sync", "after": 0}))
            assert json.loads(await asyncio.wait_for(sockets[0].recv(), 5))["code"] == "unauthenticated"
            await sockets[0].close()
            assert sockets[0].close_code == 1000
            await sockets[1].send("not json")
            assert json.loads(await asyncio.wait_for(sockets[1].recv(), 5))["code"] == "bad_request"
            for ws in sockets[1:]:
                await ws.close()
                assert ws.close_code == 1000

        started = time.monotonic()
        asyncio.run(scenario())
        assert time.monotonic() - started < 30
    finally:
        server.stop()
    log = server.log_path.read_text()[earlier:]
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]
