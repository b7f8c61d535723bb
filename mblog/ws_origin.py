"""The WebSocket Origin check, judged the way Django's CSRF check judges a POST.

A handshake is let through when its Origin equals the origin the request was made to
(scheme, with the forwarded scheme when SECURE_PROXY_SSL_HEADER is set, and the Host
header with its port) or is listed in CSRF_TRUSTED_ORIGINS (`https://*.example.com`
matches subdomains, as for CSRF). Anything else is refused before the socket opens:
another port or scheme on the same host, `null`, no Origin, or a Host not in
ALLOWED_HOSTS.

A handshake with an Authorization header is a script's, not a page's (a browser's
WebSocket cannot set one): its token alone decides (mblog.ws_auth ignores its cookies),
so it needs no Origin. Channels' AllowedHostsOriginValidator compares host names only, so a
page on another port of the same host (same site, so the session cookie goes along)
could read a user's frames.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

CLOSE_FORBIDDEN = 4403


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin1")
    return None


def _scheme(scope) -> str:
    """http or https, as Django's HttpRequest.scheme would say for this handshake."""
    if settings.SECURE_PROXY_SSL_HEADER:
        header, secure_value = settings.SECURE_PROXY_SSL_HEADER
        name = header.removeprefix("HTTP_").lower().replace("_", "-").encode("latin1")
        value = _header(scope, name)
        if value is not None:
            return "https" if value.split(",", 1)[0].strip() == secure_value else "http"
    return "https" if scope.get("scheme") in ("wss", "https") else "http"


def _allowed_hosts() -> list[str]:
    if settings.DEBUG and not settings.ALLOWED_HOSTS:
        return [".localhost", "127.0.0.1", "[::1]"]
    return settings.ALLOWED_HOSTS


def origin_allowed(scope) -> bool:
    origin = _header(scope, b"origin")
    host = _header(scope, b"host")
    if not origin or origin == "null" or not host:
        return False
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, _allowed_hosts()):
        return False
    if origin == f"{_scheme(scope)}://{host}":
        return True
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    try:
        parsed = urlsplit(origin)
        netloc = parsed.netloc.lower()
    except ValueError:
        return False
    return any(
        urlsplit(trusted).scheme == parsed.scheme and is_same_domain(netloc, urlsplit(trusted).netloc.lstrip("*"))
        for trusted in settings.CSRF_TRUSTED_ORIGINS
        if "*" in trusted
    )


def allowed(scope) -> bool:
    """Whether this handshake may go on: a script's (it has an Authorization header, its
    token decides) or from one of the site's own origins."""
    return bool(_header(scope, b"authorization")) or origin_allowed(scope)


async def refuse(receive, send) -> None:
    """Close with 4403 before accepting: the socket never opens (a browser sees the
    handshake fail)."""
    await receive()  # websocket.connect
    await send({"type": "websocket.close", "code": CLOSE_FORBIDDEN})


class OriginCheckMiddleware:
    """Refuses a handshake from any other origin with close code 4403 before accepting.
    (The site runs the same check in mblog.ws_stack.)"""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not allowed(scope):
            return await refuse(receive, send)
        return await self.inner(scope, receive, send)
