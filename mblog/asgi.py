import gc
import logging
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mblog.settings")
django_asgi_app = get_asgi_application()  # sets Django up before the consumers import models

from channels.auth import AuthMiddleware  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from channels.sessions import CookieMiddleware, SessionMiddleware  # noqa: E402
from django.conf import settings  # noqa: E402

from chat.routing import websocket_urlpatterns as chat_ws  # noqa: E402
from inform.routing import websocket_urlpatterns as inform_ws  # noqa: E402
from inform.wire import defer_autobahn_config_dump  # noqa: E402
from mblog.ws_auth import user_for_scope  # noqa: E402

defer_autobahn_config_dump()

if not settings.REDIS_URL:
    logging.getLogger("mblog").warning(
        "REDIS_URL is not set: in-process channel layer, this serves ONE server process only. "
        "Set REDIS_URL=redis://… to run several daphne processes."
    )



class SessionAuthMiddleware(AuthMiddleware):
    """Channels' AuthMiddleware, minus the database trip (and its thread hop) for a
    socket that carries no session cookie, and with signed-in handshakes resolved in
    batches (mblog.ws_auth): in a connection storm those trips all queue on one thread."""

    async def resolve_scope(self, scope):
        scope["user"]._wrapped = await user_for_scope(scope)


def auth_stack(inner):
    return CookieMiddleware(SessionMiddleware(SessionAuthMiddleware(inner)))


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(auth_stack(URLRouter(inform_ws + chat_ws))),
    }
)

# Everything imported so far lives as long as the process: keep it out of every future
# garbage collection (the full ones scan every tracked object; docs/performance.md).
gc.freeze()
