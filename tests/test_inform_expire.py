"""Issue 13.4: `manage.py inform_expire` removes read notifications older than the
setting; unread ones stay, counters stay exact, and the newest row (every client's
resume point) is never removed."""

from datetime import timedelta
from io import StringIO
from unittest.mock import ANY

import pytest
from channels.db import database_sync_to_async as db
from django.core.management import CommandError, call_command
from django.utils import timezone

from inform import selectors, services
from inform.models import Notification, SiteUpdateRead
from inform.selectors import latest_notification_id
from inform.services import send_inform

pytestmark = pytest.mark.django_db


def age(ns, days: int) -> None:
    Notification.objects.filter(pk__in=[n.pk for n in ns]).update(created=timezone.now() - timedelta(days=days))


def expire(*args) -> str:
    out = StringIO()
    call_command("inform_expire", *args, stdout=out)
    return out.getvalue()


def ids() -> set[int]:
    return set(Notification.objects.values_list("id", flat=True))


def test_old_read_ones_go_unread_and_recent_ones_stay(alice, bob):
    old_read, old_unread, new_read = (send_inform(to=alice, verb="follow", text=t, actor=bob)[0] for t in "abc")
    services.notifications_mark_read(alice, [old_read.id, new_read.id])
    services.notifications_mark_seen(alice, old_unread.id)
    age([old_read, old_unread], 91)
    age([new_read], 89)
    newest = send_inform(to=bob, verb="follow", text="keeps the cursor", actor=alice)[0]
    before = selectors.counters(alice), selectors.counters(bob)
    assert "removed 1 read notification(s)" in expire()
    assert ids() == {old_unread.id, new_read.id, newest.id}
    assert (selectors.counters(alice), selectors.counters(bob)) == before
    assert expire().startswith("removed 0 read")  # again: nothing more


def test_the_newest_row_stays_even_when_old_and_read(alice, bob):
    ns = [send_inform(to=alice, verb="follow", text=t, actor=bob)[0] for t in "abc"]
    services.notifications_mark_all_read(alice)
    age(ns, 400)
    cursor = latest_notification_id()
    expire()
    assert ids() == {ns[-1].id} and latest_notification_id() == cursor


def test_site_updates_go_once_everyone_who_has_them_read_them(alice, bob, make_user):
    s1, s2, s3 = (send_inform(everyone=True, verb="site_update", text=t)[0] for t in ("s1", "s2", "s3"))
    late = make_user("late")  # joined after all three: they are not in its stream
    assert selectors.site_watermarks(late) == (s3.id, 0)
    services.notifications_mark_read(alice, [s1.id, s2.id])
    services.notifications_mark_read(bob, [s1.id])
    services.preferences_save(bob, {"site_update": "off"})  # s2 is not in bob's stream now
    age([s1, s2, s3], 100)
    personal = send_inform(to=alice, verb="follow", text="newest", actor=bob)[0]
    assert "and 2 site update(s)" in expire()
    assert ids() == {s3.id, personal.id}
    assert not SiteUpdateRead.objects.exists()  # receipts go with their rows
    assert selectors.counters(alice) == (2, 2, ANY)


def test_days_come_from_the_setting_or_the_option(settings, alice, bob):
    a, b = (send_inform(to=alice, verb="follow", text=t, actor=bob)[0] for t in "ab")
    send_inform(to=bob, verb="follow", text="newest", actor=alice)
    services.notifications_mark_all_read(alice)
    age([a], 20)
    age([b], 8)
    settings.INFORM_EXPIRE_READ_AFTER_DAYS = 30
    assert expire().startswith("removed 0 ")
    assert expire("--days", "10").startswith("removed 1 ")
    settings.INFORM_EXPIRE_READ_AFTER_DAYS = 7
    assert expire().startswith("removed 1 ")
    with pytest.raises(CommandError):
        expire("--days", "0")


def test_expiry_goes_in_batches(alice, bob, monkeypatch):
    monkeypatch.setattr(services, "EXPIRE_BATCH", 3)
    Notification.objects.bulk_create(
        [Notification(recipient=alice, actor=bob, verb="follow", text=f"n{i}", read_at=timezone.now()) for i in range(10)]
    )
    Notification.objects.update(created=timezone.now() - timedelta(days=200))
    newest = send_inform(to=alice, verb="follow", text="unread", actor=bob)[0]
    assert services.notifications_expire(timezone.now() - timedelta(days=90)) == (10, 0)
    assert ids() == {newest.id}


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_client_at_the_newest_cursor_resumes_without_a_reset(sockets, make_user):
    alice, bob = await db(make_user)("alice"), await db(make_user)("bob")
    ns = [(await db(send_inform)(to=alice, verb="follow", text=t, actor=bob))[0] for t in "abc"]
    await db(services.notifications_mark_all_read)(alice)
    await db(age)(ns, 365)
    cursor = ns[-1].id
    await db(expire)()
    s = await sockets.open(user=alice)
    await s.send({"type": "sync", "after": cursor})
    assert await s.recv() == {"type": "unread", "unread": 0, "unseen": 0, "version": ANY}
    assert await s.recv() == {"type": "synced", "cursor": cursor}
