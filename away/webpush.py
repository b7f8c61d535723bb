"""Web Push to the browsers a person subscribed (RFC 8030/8291/8292), through pywebpush:
payload encryption and the VAPID signature are the library's."""

import base64
import json
import logging
from urllib.parse import urlsplit

from django.conf import settings
from pywebpush import WebPushException, webpush

from .models import PushSubscription

log = logging.getLogger(__name__)


def configured() -> bool:
    return bool(settings.VAPID_PUBLIC_KEY and settings.VAPID_PRIVATE_KEY)


def generate_vapid_keys() -> tuple[str, str]:
    """(public, private): the public key as the browser's applicationServerKey (an
    uncompressed P-256 point), the private key as its 32 raw bytes, both base64url."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    private = key.private_numbers().private_value.to_bytes(32, "big")
    encode = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    return encode(public), encode(private)


def endpoint_allowed(endpoint: str) -> bool:
    """Push services are https; a plain-http endpoint only on hosts listed in
    AWAY_PUSH_INSECURE_HOSTS (a local test service), or the server could be made to
    POST to any address on its network."""
    try:
        parts = urlsplit(endpoint)
    except ValueError:
        return False
    if not parts.hostname or len(endpoint) > PushSubscription._meta.get_field("endpoint").max_length:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in settings.AWAY_PUSH_INSECURE_HOSTS)


def send(subscription: PushSubscription, payload: dict) -> bool:
    """Push one message; False when the push service says the subscription is gone
    (404/410), which deletes it. Other failures raise WebPushException."""
    try:
        webpush(
            subscription_info=subscription.info(),
            data=json.dumps(payload),
            vapid_private_key=settings.VAPID_PRIVATE_KEY,
            vapid_claims={"sub": settings.VAPID_SUBJECT},
            ttl=settings.AWAY_PUSH_TTL,
            timeout=10,
            # The encrypted body is opaque bytes (RFC 8030 §5); some services insist on saying so.
            headers={"Content-Type": "application/octet-stream"},
        )
    except WebPushException as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (404, 410):
            subscription.delete()
            return False
        raise
    return True
