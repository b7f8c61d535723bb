"""Session authentication for WebSocket handshakes: one middleware, sessions read in batches.
(A handshake with an `Authorization: Bearer` header is a script's: its access token
decides, see tokens.services.)

Channels' AuthMiddleware reads the session row and then the user row for every socket,
one socket at a time on Channels' single database thread: ~1.1 ms of CPU per socket
here, so after a restart a reconnect storm of 5,000 signed-in browsers outlasts
daphne's handshake timeout and none get in (docs/performance.md). Here the handshakes
that arrive while one batch is being read wait for the next: two queries per batch
(sessions, then users) and, for each socket, Django's own session decoding and the
same checks as Channels' get_user (backend, active user, session hash).

A key with no live session is anonymous at once (made-up keys cost one shared query).
Anything out of the ordinary (a session that does not verify, another backend, another
session engine) goes through Channels' get_user unchanged, which also flushes a session
whose hash does not match.
"""

import asyncio
import weakref

from channels.auth import get_user
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model, load_backend
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore as DbSessionStore
from django.http.cookie import parse_cookie
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.module_loading import import_string

from tokens.services import bearer, socket_key, token_authenticate

BATCH = 200  # sessions per pair of queries
_MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
CLOSE_UNAUTHENTICATED = 4401


class WebSocketAuthMiddleware:
    """Sets scope["cookies"], scope["session"] and scope["user"] as Channels'
    CookieMiddleware, SessionMiddleware and AuthMiddleware would, in one step and one copy
    of the scope. Those three keep three scope copies, a session wrapper and three
    suspended coroutines alive for as long as each socket is open (docs/performance.md);
    their session wrapper saves sessions only on HTTP responses, so a WebSocket loses
    nothing without it. (The site runs authenticate() in mblog.ws_stack.)"""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        scope = await authenticate(scope, receive, send)
        if scope is not None:
            return await self.inner(scope, receive, send)


async def authenticate(scope, receive, send) -> dict | None:
    """A copy of the scope with "cookies", "session" and "user" (the one copy a socket
    keeps), or None when the handshake was refused (a bad token: closed with 4401).
    A handshake with `Authorization: Bearer` is its token's user, or refused; its cookies
    are ignored. `auth_key` is what ends the socket when the token is revoked
    (realtime.sessions); `read_only` tells consumers what it may change."""
    header = authorization(scope)
    if header is not None:
        token = await database_sync_to_async(token_authenticate)(bearer(header))
        if token is None:
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": CLOSE_UNAUTHENTICATED})
            return None
        return dict(
            scope, cookies={}, session=_session_store()(None), user=token.user,
            auth_key=socket_key(token.pk), read_only=token.read_only,
        )
    cookies = {}
    for name, value in scope["headers"]:
        if name == b"cookie":
            cookies = parse_cookie(value.decode("latin1"))
            break
    session = _session_store()(cookies.get(settings.SESSION_COOKIE_NAME))
    scope = dict(scope, cookies=cookies, session=session)
    scope["user"] = await user_for_scope(scope)
    return scope


def authorization(scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return value.decode("latin1")
    return None


async def user_for_scope(scope):
    """The scope's user: AnonymousUser without a session cookie, else the session's user."""
    key = scope["cookies"].get(settings.SESSION_COOKIE_NAME)
    if not key:
        return AnonymousUser()
    if _batchable():
        user = await _batcher().user_for(key)
        if user is not None:
            return user
    return await get_user(scope)


def _session_store():
    return import_string(settings.SESSION_ENGINE + ".SessionStore")


def _batchable() -> bool:
    return issubclass(_session_store(), DbSessionStore) and _MODEL_BACKEND in settings.AUTHENTICATION_BACKENDS


def users_for_session_keys(keys: list[str]) -> dict:
    """{session key: user} for the keys whose live session verifies as Channels' get_user
    would verify it with ModelBackend; the other keys are left out."""
    return read_sessions(keys)[0]


def read_sessions(keys: list[str]) -> tuple[dict, set]:
    """({key: user} for the sessions that verify, {keys that only get_user can decide}).

    A key in neither has no live session, or one without a signed-in user: anonymous,
    as get_user would say, without its per-socket queries (an attacker's made-up keys
    must cost no more than real ones). A session hash made with a key of
    SECRET_KEY_FALLBACKS verifies, as in Django's own get_user."""
    store_class = _session_store()
    model = store_class.get_model_class()
    rows = model.objects.filter(session_key__in=keys, expire_date__gt=timezone.now()).values_list(
        "session_key", "session_data"
    )
    decoder = store_class()
    User = get_user_model()
    claimed = {}
    slow = set()
    for key, data in rows:
        session = decoder.decode(data)
        if SESSION_KEY not in session:
            continue  # nobody signed in with it (or its signature failed): anonymous
        if session.get(BACKEND_SESSION_KEY) != _MODEL_BACKEND or not session.get(HASH_SESSION_KEY):
            slow.add(key)
            continue
        try:
            claimed[key] = (User._meta.pk.to_python(session[SESSION_KEY]), session[HASH_SESSION_KEY])
        except Exception:  # noqa: BLE001 - a malformed session: the slow path decides
            slow.add(key)
    backend: ModelBackend = load_backend(_MODEL_BACKEND)
    users = User._default_manager.in_bulk({user_id for user_id, _ in claimed.values()})
    verified = {}
    for key, (user_id, session_hash) in claimed.items():
        user = users.get(user_id)
        if user is not None and backend.user_can_authenticate(user) and _hash_verifies(user, session_hash):
            verified[key] = user
        else:
            slow.add(key)  # get_user flushes a session whose hash does not verify
    return verified, slow


def _hash_verifies(user, session_hash: str) -> bool:
    if constant_time_compare(session_hash, user.get_session_auth_hash()):
        return True
    return any(constant_time_compare(session_hash, h) for h in user.get_session_auth_fallback_hash())


class _Batcher:
    def __init__(self) -> None:
        self.waiting: dict[str, list[asyncio.Future]] = {}
        self.reading = False

    async def user_for(self, key: str):
        future = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(key, []).append(future)
        if not self.reading:
            self.reading = True
            asyncio.create_task(self._read())
        return await future

    async def _read(self) -> None:
        try:
            while self.waiting:
                keys = list(self.waiting)[:BATCH]
                batch = {key: self.waiting.pop(key) for key in keys}
                try:
                    users, slow = await database_sync_to_async(read_sessions)(keys)
                except Exception as exc:  # noqa: BLE001 - every waiting handshake learns why
                    for futures in batch.values():
                        for f in futures:
                            if not f.done():
                                f.set_exception(exc)
                    continue
                for key, futures in batch.items():
                    # None: Channels' get_user decides; no live session: anonymous.
                    user = users.get(key) or (None if key in slow else AnonymousUser())
                    for f in futures:
                        if not f.done():
                            f.set_result(user)
        finally:
            self.reading = False


_batchers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batcher]" = weakref.WeakKeyDictionary()


def _batcher() -> _Batcher:
    loop = asyncio.get_running_loop()
    batcher = _batchers.get(loop)
    if batcher is None:
        batcher = _batchers[loop] = _Batcher()
    return batcher
