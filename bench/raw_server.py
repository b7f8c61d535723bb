"""The yardstick: a minimal server on the raw `websockets` library.

Every socket but /control is a listener; whatever /control sends is handed to
websockets' broadcast() for all listeners. Prints "ready" when it listens.

    python bench/raw_server.py PORT
"""

import asyncio
import sys

from websockets.asyncio.server import broadcast, serve

listeners = set()


async def handler(ws):
    if ws.request.path == "/control":
        async for message in ws:
            broadcast(listeners, message)
        return
    listeners.add(ws)
    try:
        await ws.wait_closed()
    finally:
        listeners.discard(ws)


async def main(port: int) -> None:
    async with serve(handler, "127.0.0.1", port, ping_interval=None, compression=None, backlog=4096):
        print("ready", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
