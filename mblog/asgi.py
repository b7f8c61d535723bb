import gc
import logging
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mblog.settings")
django_asgi_app = get_asgi_application()  # sets Django up before the consumers import models

from django.conf import settings  # noqa: E402

from chat.routing import websocket_urlpatterns as chat_ws  # noqa: E402
from inform.routing import websocket_urlpatterns as inform_ws  # noqa: E402
from mblog.ws_stack import WebSocketStack  # noqa: E402
from realtime.shed import LoadShedMiddleware  # noqa: E402
from realtime.wire import defer_autobahn_config_dump  # noqa: E402

defer_autobahn_config_dump()

if not settings.REDIS_URL:
    logging.getLogger("mblog").warning(
        "REDIS_URL is not set: in-process channel layer, this serves ONE server process only. "
        "Set REDIS_URL=redis://… to run several daphne processes."
    )

# Load shedding around HTTP too: it paces what the process accepts from its listening
# port, and every connection that reaches the application has arrived.
shed = LoadShedMiddleware()
websocket = WebSocketStack(inform_ws + chat_ws, shed)


def application(scope, receive, send):
    """Channels' ProtocolTypeRouter, without a coroutine of its own that every open socket
    would keep (docs/performance.md): it returns the coroutine of the application for the
    scope's type, for the server to run. Unknown types fail as with ProtocolTypeRouter."""
    shed.arrived(send)
    if scope["type"] == "websocket":
        return websocket(scope, receive, send)
    if scope["type"] == "http":
        return django_asgi_app(scope, receive, send)
    raise ValueError(f"No application configured for scope type {scope['type']!r}")


application._asgi_single_callable = True  # a coroutine per call: ASGI 3 (asgiref's marker)

# Everything imported so far lives as long as the process: keep it out of every future
# garbage collection (the full ones scan every tracked object; docs/performance.md).
gc.freeze()
