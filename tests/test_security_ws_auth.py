"""Issue 10 item 8: bogus session keys on the socket handshake, and key rotation."""

import secrets
from unittest.mock import ANY

import pytest
from channels.db import database_sync_to_async as db
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client

import mblog.ws_auth
from tests.conftest import Socket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.asyncio
async def test_made_up_session_keys_are_anonymous_without_the_slow_path(monkeypatch):
    slow_calls = []
    real_get_user = mblog.ws_auth.get_user

    async def counting_get_user(scope):
        slow_calls.append(scope)
        return await real_get_user(scope)

    monkeypatch.setattr(mblog.ws_auth, "get_user", counting_get_user)
    for key in [secrets.token_hex(16) for _ in range(20)] + ["not-a-session", "x" * 40]:
        s = Socket("/ws/inform/", cookie=f"{settings.SESSION_COOKIE_NAME}={key}")
        assert await s.connect()
        try:
            await s.send({"type": "sync", "after": 0})
            assert (await s.recv())["code"] == "unauthenticated"
        finally:
            await s.close()
    assert slow_calls == []


@pytest.mark.asyncio
async def test_a_secret_key_rotation_keeps_sockets_signed_in(make_user, settings):
    settings.SECRET_KEY = "the-old-secret-key-" + "o" * 40
    alice = await db(make_user)("alice")
    c = Client()
    await db(c.force_login)(alice)
    key = c.cookies[settings.SESSION_COOKIE_NAME].value
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "the-new-secret-key-" + "n" * 40

    s = Socket("/ws/inform/", cookie=f"{settings.SESSION_COOKIE_NAME}={key}")
    assert await s.connect()
    try:
        await s.send({"type": "sync", "after": 0})
        assert await s.recv() == {"type": "unread", "unread": 0, "unseen": 0, "version": ANY}  # signed in, not "unauthenticated"
    finally:
        await s.close()
    assert await db(Session.objects.filter(session_key=key).exists)()  # and not flushed
    # HTTP agrees (Django's own get_user accepts the fallback hash).
    assert (await db(c.get)("/inform/api/unread/")).status_code == 200
