"""Caps on open WebSockets per signed-in user and per client address, in this process.

Every socket holds a file descriptor and memory for as long as it is open: without a
cap one session (or one address, signed in or not) can open sockets until the process
runs out of descriptors and nobody else gets in. A handshake over a cap is accepted,
told why in an error frame and closed with 4429, so that a browser sees the code.
0 turns a cap off (the benchmark opens thousands of sockets from one address).

The client address is the one daphne reports: the real client's behind nginx
(--proxy-headers), where nginx's limit_conn also caps sockets per address before they
reach any process.
"""

import json
from collections import Counter

from django.conf import settings

from realtime import metrics

CLOSE_TOO_MANY = 4429


class SocketCapMiddleware:
    """Sits after the auth middleware (it needs scope["user"]). The site runs take(),
    refuse() and release() in mblog.ws_stack."""

    def __init__(self, inner=None) -> None:
        self.inner = inner
        self.by_user: Counter = Counter()
        self.by_address: Counter = Counter()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.inner(scope, receive, send)
        held = self.take(scope)
        if isinstance(held, str):
            return await self.refuse(receive, send, held)
        try:
            return await self.inner(scope, receive, send)
        finally:
            self.release(held)

    def take(self, scope) -> "tuple | str":
        """Counts this socket against its user's and its address's caps: what release()
        takes back when it ends; or, over a cap, why it is refused (then refuse())."""
        user = scope.get("user")
        user_key = user.pk if user is not None and user.is_authenticated else None
        address = (scope.get("client") or (None,))[0]
        per_user, per_address = settings.WS_MAX_SOCKETS_PER_USER, settings.WS_MAX_SOCKETS_PER_ADDRESS
        if user_key is not None and per_user and self.by_user[user_key] >= per_user:
            return f"at most {per_user} open sockets per user; close a tab"
        if address is not None and per_address and self.by_address[address] >= per_address:
            return f"at most {per_address} open sockets per address"
        if user_key is not None:
            self.by_user[user_key] += 1
        if address is not None:
            self.by_address[address] += 1
        return user_key, address

    def release(self, held: tuple) -> None:
        for counter, key in zip((self.by_user, self.by_address), held, strict=True):
            if key is not None:
                counter[key] -= 1
                if counter[key] <= 0:
                    del counter[key]

    async def refuse(self, receive, send, detail: str) -> None:
        metrics.CLOSES.labels("too_many_sockets").inc()
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        frame = {"type": "error", "code": "too_many_sockets", "detail": detail}
        await send({"type": "websocket.send", "text": json.dumps(frame, separators=(",", ":"))})
        await send({"type": "websocket.close", "code": CLOSE_TOO_MANY})
