import gc
import logging
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mblog.settings")
django_asgi_app = get_asgi_application()  # sets Django up before the consumers import models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from chat.routing import websocket_urlpatterns as chat_ws  # noqa: E402
from inform.routing import websocket_urlpatterns as inform_ws  # noqa: E402
from mblog.ws_auth import WebSocketAuthMiddleware  # noqa: E402
from mblog.ws_limits import SocketCapMiddleware  # noqa: E402
from mblog.ws_origin import OriginCheckMiddleware  # noqa: E402
from realtime.shed import LoadShedMiddleware  # noqa: E402
from realtime.wire import defer_autobahn_config_dump  # noqa: E402

defer_autobahn_config_dump()

if not settings.REDIS_URL:
    logging.getLogger("mblog").warning(
        "REDIS_URL is not set: in-process channel layer, this serves ONE server process only. "
        "Set REDIS_URL=redis://… to run several daphne processes."
    )

# Load shedding outermost, around HTTP too: it paces what the process accepts from its
# listening port, and every connection that reaches the application has arrived.
application = LoadShedMiddleware(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": OriginCheckMiddleware(
                WebSocketAuthMiddleware(SocketCapMiddleware(URLRouter(inform_ws + chat_ws)))
            ),
        }
    )
)

# Everything imported so far lives as long as the process: keep it out of every future
# garbage collection (the full ones scan every tracked object; docs/performance.md).
gc.freeze()
