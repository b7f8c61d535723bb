"""Personal access tokens: create, revoke, authenticate.

A token reads `mbt_<prefix>_<secret>`: the prefix (public, unique) finds the row, the
secret (32 random bytes) is what proves it. Only sha256(token) is stored, compared in
constant time; a high-entropy secret needs no slow hash. A token authenticates the JSON
API and the socket, never a form (tokens.middleware, mblog.ws_auth).
"""

import hashlib
import secrets
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from mblog.errors import ApplicationError
from realtime import sessions

from .models import AccessToken

KIND = "mbt"
MAX_PER_USER = 20
# last_used is a hint for the settings page, not an audit log: one write per token per minute.
LAST_USED_EVERY = timedelta(minutes=1)


class TokenError(ApplicationError):
    pass


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def socket_key(token_id: int) -> str:
    """What a token's sockets are ended by (realtime.sessions); never a session key."""
    return f"token:{int(token_id)}"


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value, else None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


def token_create(*, user, name: str, scope: str) -> tuple[AccessToken, str]:
    """The new token's row and the token itself, which is never stored nor shown again."""
    name = " ".join(name.split())
    if not name or len(name) > 100:
        raise TokenError("give the token a name of 1 to 100 characters")
    if scope not in (AccessToken.READ, AccessToken.WRITE):
        raise TokenError("scope is read or write")
    if AccessToken.objects.filter(user=user).count() >= MAX_PER_USER:
        raise TokenError(f"at most {MAX_PER_USER} tokens; revoke one first")
    prefix = secrets.token_hex(6)
    raw = f"{KIND}_{prefix}_{secrets.token_urlsafe(32)}"
    token = AccessToken.objects.create(user=user, name=name, scope=scope, prefix=prefix, digest=_digest(raw))
    return token, raw


def token_revoke(*, user, token_id: int) -> bool:
    """Deletes the user's token; its open sockets close (4001) once this commits."""
    with transaction.atomic():
        deleted, _ = AccessToken.objects.filter(user=user, pk=token_id).delete()
        if deleted:
            sessions.end_sessions(user.pk, socket_key(token_id))
    return bool(deleted)


def token_authenticate(raw: str | None) -> AccessToken | None:
    """The live token (with its active user) that `raw` is, else None."""
    kind, _, rest = (raw or "").partition("_")
    prefix, _, secret = rest.partition("_")
    if kind != KIND or not prefix or not secret:
        return None
    token = AccessToken.objects.select_related("user").filter(prefix=prefix).first()
    if token is None or not constant_time_compare(token.digest, _digest(raw)) or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used is None or now - token.last_used > LAST_USED_EVERY:
        AccessToken.objects.filter(pk=token.pk).update(last_used=now)
        token.last_used = now
    return token
