"""Shared fixtures. Tests run against the real PostgreSQL and the real Redis channel
layer that bin/test provides (see its header); users come from make_user."""

import json

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

ORIGIN = b"http://127.0.0.1"
PASSWORD = "pw-for-tests-123"


@pytest.fixture
def make_user(django_user_model):
    def make(username: str, **extra):
        return django_user_model.objects.create_user(username=username, password=PASSWORD, **extra)

    return make


def session_cookie_for(user) -> str:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


class Socket:
    """A WebsocketCommunicator over the whole ASGI app (origin check, auth, routing)."""

    def __init__(self, path: str, cookie: str | None = None, origin: bytes | None = ORIGIN):
        from mblog.asgi import application

        headers = [(b"host", b"127.0.0.1")]
        if origin is not None:
            headers.append((b"origin", origin))
        if cookie:
            headers.append((b"cookie", cookie.encode()))
        self.comm = WebsocketCommunicator(application, path, headers=headers)
        self.connected = False

    async def connect(self):
        self.connected, self.close_code = await self.comm.connect(timeout=5)
        return self.connected

    async def send(self, frame):
        await self.comm.send_to(text_data=frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self, timeout: float = 3) -> dict:
        return json.loads(await self.comm.receive_from(timeout=timeout))

    async def recv_until(self, type_: str, timeout: float = 3) -> dict:
        while True:
            frame = await self.recv(timeout)
            if frame["type"] == type_:
                return frame

    async def silent(self, timeout: float = 0.3) -> bool:
        return await self.comm.receive_nothing(timeout=timeout)

    async def close(self):
        if self.connected:
            await self.comm.disconnect()
            self.connected = False


@pytest.fixture
async def sockets():
    """Open sockets with `await sockets.open(path, user=…)`; all closed at teardown."""
    from asgiref.sync import sync_to_async

    opened: list[Socket] = []

    class Opener:
        async def open(self, path="/ws/inform/", user=None, origin=ORIGIN, expect=True) -> Socket:
            cookie = await sync_to_async(session_cookie_for)(user) if user is not None else None
            s = Socket(path, cookie, origin)
            opened.append(s)
            ok = await s.connect()
            assert ok == expect, f"connect to {path} gave {ok}, code {getattr(s, 'close_code', None)}"
            return s

    yield Opener()
    for s in opened:
        await s.close()
