"""Reads of the inform stream. A user's stream: their own notifications and the site
updates published after they joined, ordered by id."""

from django.db.models import Exists, Max, OuterRef, Q, QuerySet

from .models import Notification, SiteUpdateRead


def latest_notification_id() -> int:
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
    """One query: a UNION ALL of two counts-to-be, so each side can use its own partial
    index (inform_unread for personal rows, inform_site_updates for site updates)."""
    receipts = SiteUpdateRead.objects.filter(user=user, notification=OuterRef("pk"))
    personal = Notification.objects.filter(recipient=user, read_at__isnull=True).order_by().values("id")
    site = (
        Notification.objects.filter(recipient__isnull=True, id__gt=max(user.site_since, user.site_read_upto))
        .exclude(Exists(receipts))
        .order_by()  # SQLite refuses ORDER BY inside a compound statement
        .values("id")
    )
    return personal.union(site, all=True).count()


def notifications_after(user, after: int, limit: int) -> list[Notification]:
    """The user's notifications with id > after, oldest first, at most limit."""
    return list(stream(user).select_related("actor").filter(id__gt=after).order_by("id")[:limit])


def latest_stream_id(user) -> int:
    return stream(user).aggregate(m=Max("id"))["m"] or 0


def last_id_before(user, when) -> int:
    """The newest id of the user's stream created before `when` (0 if none)."""
    return stream(user).filter(created__lt=when).aggregate(m=Max("id"))["m"] or 0
