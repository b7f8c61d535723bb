"""Reads of the inform stream. A user's stream: their own notifications and the site
updates published after they joined, ordered by id."""

from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Exists, Max, OuterRef, Q, QuerySet

from .models import Notification, SiteUpdateRead

UNREAD_COUNTS_BATCH = 500  # users per query (SQLite caps the parameters of one statement)


def latest_notification_id() -> int:
    """The highest committed id: an exact resume point, since ids are commit order
    (realtime.ordering)."""
    return Notification.objects.aggregate(m=Max("id"))["m"] or 0


def stream(user) -> QuerySet[Notification]:
    return Notification.objects.filter(
        Q(recipient=user) | Q(recipient__isnull=True, id__gt=user.site_since)
    )


def stream_with_read_state(user) -> QuerySet[Notification]:
    """The stream with `site_receipt` annotated; use is_read(user, n) on each row."""
    receipts = SiteUpdateRead.objects.filter(user=user, notification=OuterRef("pk"))
    return stream(user).select_related("actor").annotate(site_receipt=Exists(receipts))


def is_read(user, n: Notification) -> bool:
    if n.recipient_id is not None:
        return n.read_at is not None
    return n.id <= user.site_read_upto or getattr(n, "site_receipt", False)


def unread_count(user) -> int:
    """The user's unread count, with the read watermark as stored (not the caller's copy)."""
    return unread_counts([user.pk]).get(user.pk, 0)


def unread_counts(user_ids: Iterable[int]) -> dict[int, int]:
    """Unread counts of these users, one query per UNREAD_COUNTS_BATCH of them. Each half
    of the sum is served by its own partial index (inform_unread for personal rows,
    inform_site_updates for site updates).

    Plain SQL because it runs for every pushed notification: the ORM spent more CPU
    building the equivalent query than the database spent answering it
    (docs/performance.md)."""
    ids = [int(i) for i in user_ids]
    counts: dict[int, int] = {}
    User = get_user_model()
    for start in range(0, len(ids), UNREAD_COUNTS_BATCH):
        batch = ids[start : start + UNREAD_COUNTS_BATCH]
        sql = f"""
            SELECT u.id,
              (SELECT COUNT(*) FROM {Notification._meta.db_table} n
                WHERE n.recipient_id = u.id AND n.read_at IS NULL)
              + (SELECT COUNT(*) FROM {Notification._meta.db_table} s
                WHERE s.recipient_id IS NULL
                  AND s.id > (CASE WHEN u.site_since > u.site_read_upto THEN u.site_since ELSE u.site_read_upto END)
                  AND NOT EXISTS (SELECT 1 FROM {SiteUpdateRead._meta.db_table} r
                                  WHERE r.user_id = u.id AND r.notification_id = s.id))
            FROM {User._meta.db_table} u
            WHERE u.id IN ({", ".join(["%s"] * len(batch))})
        """
        with connection.cursor() as cursor:
            cursor.execute(sql, batch)
            counts.update(cursor.fetchall())
    return counts


def notifications_between(user, after: int, upto: int, limit: int) -> list[Notification]:
    """The user's notifications with after < id <= upto, oldest first, at most limit."""
    rows = stream(user).select_related("actor").filter(id__gt=after, id__lte=upto).order_by("id")
    return list(rows[:limit])


def notifications_after(user, after: int, limit: int) -> list[Notification]:
    """The user's notifications with id > after, oldest first, at most limit."""
    return list(stream(user).select_related("actor").filter(id__gt=after).order_by("id")[:limit])


def last_id_before(user, when) -> int:
    """The newest id of the user's stream created before `when` (0 if none)."""
    return stream(user).filter(created__lt=when).aggregate(m=Max("id"))["m"] or 0


def menu_items(user, limit: int = 8) -> list[Notification]:
    """The header menu: the newest unread, then the newest read, at most limit in all;
    each with `is_read` set (two queries)."""
    rows = stream_with_read_state(user)
    unread_q = Q(recipient__isnull=False, read_at__isnull=True) | Q(
        recipient__isnull=True, id__gt=user.site_read_upto, site_receipt=False
    )
    unread = list(rows.filter(unread_q).order_by("-id")[:limit])
    shown = {n.id for n in unread}
    latest = [n for n in rows.order_by("-id")[:limit] if n.id not in shown]
    for n in unread:
        n.is_read = False
    for n in latest:  # unread ones here only when `unread` is full already
        n.is_read = is_read(user, n)
    return (unread + [n for n in latest if n.is_read])[:limit]
