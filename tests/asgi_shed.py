"""realtime.shed's LoadShedMiddleware around tests/asgi_tiny.py, with every WebSocket
handshake held in progress until the file SHED_RELEASE_FILE exists, or for
SHED_HOLD_SECONDS if that is set (tests/test_shed_daphne.py)."""

import asyncio
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mblog.settings")
django.setup()

from realtime.shed import LoadShedMiddleware  # noqa: E402 (needs the settings)
from tests.asgi_tiny import application as tiny  # noqa: E402


async def held(scope, receive, send):
    if scope["type"] == "websocket" and "SHED_HOLD_SECONDS" in os.environ:
        await asyncio.sleep(float(os.environ["SHED_HOLD_SECONDS"]))  # a handshake's work
    elif scope["type"] == "websocket":
        while not os.path.exists(os.environ["SHED_RELEASE_FILE"]):
            await asyncio.sleep(0.02)
    return await tiny(scope, receive, send)


application = LoadShedMiddleware(held)
