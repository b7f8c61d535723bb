"""Issue 10 item 1: cross-site WebSocket hijacking from a sibling origin. The Origin of a
handshake must be the site's own full origin (scheme, host, port) or a trusted one."""

import http.server
import json
import threading

import pytest
from channels.db import database_sync_to_async as db
from channels.testing import WebsocketCommunicator

from inform.services import send_inform
from tests.conftest import free_port, session_cookie_for

pytestmark = pytest.mark.django_db(transaction=True)


async def handshake(origin: str | None, host: str = "127.0.0.1", cookie: str | None = None, scheme="ws", extra=()):
    from mblog.asgi import application

    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    headers.extend(extra)
    comm = WebsocketCommunicator(application, "/ws/inform/", headers=headers)
    comm.scope["scheme"] = scheme
    ok, code = await comm.connect(timeout=5)
    if ok:
        await comm.disconnect()
    return ok, code


SIBLINGS = [
    "http://127.0.0.1:9999",  # another port of the same host
    "https://127.0.0.1",  # another scheme
    "chrome-extension://127.0.0.1",
    "ws://127.0.0.1",
    "null",
    "http://evil.example",
    "http://127.0.0.1.evil.example",
]


@pytest.mark.asyncio
@pytest.mark.parametrize("origin", SIBLINGS)
async def test_sibling_origins_are_refused_with_4403(make_user, origin):
    alice = await db(make_user)("alice")
    cookie = await db(session_cookie_for)(alice)
    assert await handshake(origin, cookie=cookie) == (False, 4403)
    assert await handshake(origin) == (False, 4403)


@pytest.mark.asyncio
async def test_missing_origin_and_unknown_host_are_refused():
    assert await handshake(None) == (False, 4403)
    assert await handshake("http://evil.example", host="evil.example") == (False, 4403)


@pytest.mark.asyncio
async def test_the_sites_own_origin_with_its_port_is_accepted():
    assert (await handshake("http://127.0.0.1"))[0]
    assert (await handshake("http://127.0.0.1:8000", host="127.0.0.1:8000"))[0]
    assert await handshake("http://127.0.0.1", host="127.0.0.1:8000") == (False, 4403)
    assert (await handshake("https://127.0.0.1", scheme="wss"))[0]
    assert await handshake("http://127.0.0.1", scheme="wss") == (False, 4403)


@pytest.mark.asyncio
async def test_trusted_origins_are_accepted(settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://app.example", "https://*.mblog.example"]
    assert (await handshake("https://app.example"))[0]
    assert (await handshake("https://eu.mblog.example"))[0]
    assert await handshake("http://eu.mblog.example") == (False, 4403)
    assert await handshake("https://app.example:8443") == (False, 4403)


@pytest.mark.asyncio
async def test_behind_the_proxy_the_forwarded_scheme_counts(settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    https = [(b"x-forwarded-proto", b"https")]
    assert (await handshake("https://127.0.0.1", extra=https))[0]
    assert await handshake("http://127.0.0.1", extra=https) == (False, 4403)
    assert (await handshake("http://127.0.0.1", extra=[(b"x-forwarded-proto", b"http")]))[0]


# --- real Chromium: a page on another port of 127.0.0.1 tries alice's socket --------

PROBE = """
async (url) => new Promise((resolve) => {
  const got = { opened: false, frames: [], code: null };
  const ws = new WebSocket(url);
  ws.onopen = () => { got.opened = true; ws.send(JSON.stringify({type: "sync", after: 0})); };
  ws.onmessage = (ev) => { got.frames.push(JSON.parse(ev.data)); if (got.frames.length >= 2) ws.close(); };
  ws.onclose = (ev) => { got.code = ev.code; resolve(got); };
  setTimeout(() => { ws.close(); }, 5000);
})
"""


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<!doctype html><title>elsewhere</title><p>a page on another port</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.browser
def test_a_page_on_another_port_cannot_open_alices_socket(browser, live_url, login, make_user):
    alice = make_user("alice")
    send_inform(to=alice, verb="mention", text="secret for alice")
    other = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Page)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    ctx = browser.new_context()
    login(ctx, alice)
    ws_url = live_url.replace("http://", "ws://") + "/ws/inform/"
    try:
        # Control: from the site's own page the same script reads alice's notification,
        # so the cookie does travel with the handshake.
        own = ctx.new_page()
        own.goto(live_url + "/")
        got = own.evaluate(PROBE, ws_url)
        assert got["opened"] and any(f.get("text") == "secret for alice" for f in got["frames"]), got

        evil = ctx.new_page()
        evil.goto(f"http://127.0.0.1:{other.server_address[1]}/")
        got = evil.evaluate(PROBE, ws_url)
        assert got["opened"] is False and got["frames"] == [], json.dumps(got)
    finally:
        ctx.close()
        other.shutdown()
        other.server_close()
