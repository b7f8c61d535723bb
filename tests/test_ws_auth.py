"""Signed-in handshakes resolve their session in batches (mblog.ws_auth), with the same
answers as Channels' get_user: the session's user when it verifies, anonymous otherwise."""

import asyncio
from datetime import timedelta
from unittest.mock import ANY

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.sessions.models import Session
from django.utils import timezone

from mblog.ws_auth import user_for_scope, users_for_session_keys

from .conftest import Socket, session_cookie_for

pytestmark = pytest.mark.django_db


def session_key_for(user) -> str:
    return session_cookie_for(user).split("=", 1)[1]


def test_a_batch_of_sessions_takes_two_queries(make_user, django_assert_num_queries):
    users = [make_user(f"u{i}") for i in range(30)]
    keys = [session_key_for(u) for u in users]
    with django_assert_num_queries(2):
        found = users_for_session_keys(keys + ["no-such-session"])
    assert {k: u.pk for k, u in found.items()} == {k: u.pk for k, u in zip(keys, users, strict=True)}


def test_sessions_that_do_not_verify_are_left_to_channels(make_user):
    changed, inactive, expired, fine = (make_user(n) for n in ["changed", "inactive", "expired", "fine"])
    keys = {u.username: session_key_for(u) for u in (changed, inactive, expired, fine)}
    changed.set_password("a-new-password-456")
    changed.save()
    inactive.is_active = False
    inactive.save()
    Session.objects.filter(session_key=keys["expired"]).update(expire_date=timezone.now() - timedelta(seconds=1))
    found = users_for_session_keys(list(keys.values()))
    assert {u.username for u in found.values()} == {"fine"}


@pytest.mark.django_db(transaction=True)  # handshakes read sessions from other threads
@pytest.mark.asyncio
async def test_concurrent_handshakes_each_get_their_own_user(make_user):
    users = [await database_sync_to_async(make_user)(f"c{i}") for i in range(60)]
    keys = [await database_sync_to_async(session_key_for)(u) for u in users]
    scopes = [{"cookies": {settings.SESSION_COOKIE_NAME: k}} for k in keys]
    resolved = await asyncio.gather(*(user_for_scope(s) for s in scopes))
    assert [u.pk for u in resolved] == [u.pk for u in users]


@pytest.mark.django_db(transaction=True)  # handshakes read sessions from other threads
@pytest.mark.asyncio
async def test_a_changed_password_signs_the_socket_out_and_flushes_the_session(make_user):
    alice = await database_sync_to_async(make_user)("alice")
    key = await database_sync_to_async(session_key_for)(alice)

    def change_password():
        alice.set_password("a-new-password-456")
        alice.save()

    await database_sync_to_async(change_password)()

    s = Socket("/ws/inform/", f"{settings.SESSION_COOKIE_NAME}={key}")
    assert await s.connect()
    try:
        await s.send({"type": "sync", "after": 0})
        assert (await s.recv()) == {
            "type": "error", "code": "unauthenticated", "detail": "sign in to sync or read notifications",
        }
    finally:
        await s.close()
    # Channels' get_user (the path for sessions that do not verify) flushed it.
    assert not await database_sync_to_async(Session.objects.filter(session_key=key).exists)()


@pytest.mark.django_db(transaction=True)  # handshakes read sessions from other threads
@pytest.mark.asyncio
async def test_unknown_cookie_and_no_cookie_are_anonymous():
    from django.contrib.sessions.backends.db import SessionStore

    assert not (await user_for_scope({"cookies": {}})).is_authenticated
    unknown = "x" * 32
    scope = {"cookies": {settings.SESSION_COOKIE_NAME: unknown}, "session": SessionStore(unknown)}
    assert not (await user_for_scope(scope)).is_authenticated


@pytest.mark.django_db(transaction=True)  # handshakes read sessions from other threads
@pytest.mark.asyncio
async def test_the_session_cookie_is_found_among_other_cookies(make_user):

    alice = await database_sync_to_async(make_user)("alice")
    key = await database_sync_to_async(session_key_for)(alice)
    s = Socket("/ws/inform/", f"csrftoken=abc; {settings.SESSION_COOKIE_NAME}={key}; theme=dark")
    assert await s.connect()
    try:
        await s.send({"type": "sync", "after": 0})
        assert (await s.recv()) == {"type": "unread", "unread": 0, "unseen": 0, "version": ANY}
    finally:
        await s.close()
