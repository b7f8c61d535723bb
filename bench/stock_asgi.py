"""The site (mblog.asgi) plus /ws/stock/: the stock Channels pattern, for the baseline.

Every /ws/stock/ socket is a consumer with its own layer channel in one group;
a broadcast is one group_send that the layer delivers to each consumer, which
dispatches it (with Channels' per-message thread hop) and sends it. Channels' own
middleware (AllowedHostsOriginValidator, AuthMiddlewareStack), not the site's single
WebSocketAuthMiddleware; the same daphne and channel layer settings as the site.

    daphne bench.stock_asgi:application
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mblog.settings")

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from mblog.asgi import application as site  # noqa: E402  (sets Django up)

STOCK_GROUP = "bench-stock"
STOCK_PATH = "/ws/stock/"


class StockConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        await self.channel_layer.group_add(STOCK_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(STOCK_GROUP, self.channel_name)

    async def bench_broadcast(self, event):
        await self.send(text_data=event["text"])


stock = AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter([path("ws/stock/", StockConsumer.as_asgi())])))


def application(scope, receive, send):
    # Returns the coroutine to run, as mblog.asgi.application does: no coroutine of its own
    # that every open socket would keep (the memory figures are the site's).
    if scope["type"] == "websocket" and scope["path"].startswith(STOCK_PATH):
        return stock(scope, receive, send)
    return site(scope, receive, send)


application._asgi_single_callable = True


if os.environ.get("MBLOG_MEMORY_DUMP"):  # bench/memory.py: tracemalloc snapshots on SIGUSR1
    from bench import memory_hook

    memory_hook.install()
