"""Presence that means "is looking" (issue 14.1): tabs report visibility over /ws/inform/,
the rows are shared by every process, and a socket writes only on change."""

import time
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from away import presence
from away.models import Presence

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

db = database_sync_to_async


async def settle(sock):
    """Frames are handled in order: once a later sync is answered, the earlier one was."""
    await sock.send({"type": "sync", "after": 0})
    await sock.recv_until("synced")


async def poll(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await db(condition)():
            return True
        await _sleep()
    return False


async def _sleep():
    import asyncio

    await asyncio.sleep(0.05)


async def test_a_visible_tab_means_looking_and_a_hidden_one_only_open(sockets, make_user):
    alice = await db(make_user)("alice")
    s = await sockets.open(user=alice)
    assert not await db(presence.has_open_tab)(alice.pk)  # nothing written before a report
    await s.send({"type": "presence", "visible": True})
    await settle(s)
    assert await db(presence.is_looking)(alice.pk)
    await s.send({"type": "presence", "visible": False})
    await settle(s)
    assert not await db(presence.is_looking)(alice.pk)
    assert await db(presence.has_open_tab)(alice.pk)


async def test_any_visible_tab_counts_and_closing_removes_the_row(sockets, make_user):
    alice = await db(make_user)("alice")
    hidden = await sockets.open(user=alice)
    shown = await sockets.open(user=alice)
    await hidden.send({"type": "presence", "visible": False})
    await shown.send({"type": "presence", "visible": True})
    await settle(hidden)
    await settle(shown)
    assert await db(presence.is_looking)(alice.pk)
    await shown.close()
    assert await poll(lambda: not presence.is_looking(alice.pk))
    assert await db(Presence.objects.filter(user=alice).count)() == 1
    await hidden.close()
    assert await poll(lambda: not Presence.objects.filter(user=alice).exists())


async def test_a_repeated_report_writes_nothing(sockets, make_user):
    alice = await db(make_user)("alice")
    s = await sockets.open(user=alice)
    await s.send({"type": "presence", "visible": True})
    await settle(s)
    before = await db(Presence.objects.get)(user=alice)
    await s.send({"type": "presence", "visible": True})
    await settle(s)
    after = await db(Presence.objects.get)(user=alice)
    assert after.seen == before.seen


async def test_the_heartbeat_keeps_rows_fresh_and_stale_rows_do_not_count(sockets, make_user, settings):
    settings.AWAY_PRESENCE_HEARTBEAT = 0.1
    alice = await db(make_user)("alice")
    bob = await db(make_user)("bob")
    s = await sockets.open(user=alice)
    await s.send({"type": "presence", "visible": True})
    await settle(s)
    first = (await db(Presence.objects.get)(user=alice)).seen
    assert await poll(lambda: Presence.objects.get(user=alice).seen > first)
    # A process that died leaves its row behind: once stale it no longer counts and is swept.
    long_ago = timezone.now() - timedelta(seconds=settings.AWAY_PRESENCE_STALE + 1)
    await db(Presence.objects.create)(conn="dead-process", user=bob, visible=True, seen=long_ago)
    assert not await db(presence.is_looking)(bob.pk)
    assert await db(presence.sweep_stale)() == 1
    # A row swept away (say after a database outage) comes back with the next beat.
    await db(Presence.objects.filter(user=alice).delete)()
    assert await poll(lambda: presence.is_looking(alice.pk))


async def test_presence_frames_are_checked(sockets, make_user):
    alice = await db(make_user)("alice")
    s = await sockets.open(user=alice)
    await s.send({"type": "presence"})
    assert (await s.recv_until("error"))["code"] == "bad_request"
    await s.send({"type": "presence", "visible": "yes"})
    assert (await s.recv_until("error"))["code"] == "bad_request"
    anonymous = await sockets.open()
    await anonymous.send({"type": "presence", "visible": True})
    assert (await anonymous.recv_until("error"))["code"] == "unauthenticated"
    assert not await db(Presence.objects.exists)()
