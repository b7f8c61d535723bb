"""Reads of the chat app."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, F, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from .models import Message, Presence, Room

HISTORY = 50


def presence_stale_seconds() -> float:
    return settings.CHAT_PRESENCE_STALE


def presence_cutoff() -> datetime:
    return timezone.now() - timedelta(seconds=presence_stale_seconds())


def room_by_name(name: str) -> Room | None:
    return Room.objects.filter(name=name).first()


def rooms_for_list():
    """Every room, busiest first, with its last activity and how many people are here now."""
    here = (
        Presence.objects.filter(room=OuterRef("pk"), seen__gte=presence_cutoff())
        .values("room")
        .annotate(n=Count("user", distinct=True))
        .values("n")
    )
    last = Message.objects.filter(room=OuterRef("pk")).order_by("-id").values("created")[:1]
    return Room.objects.annotate(here=Coalesce(Subquery(here), 0), last_message=Subquery(last)).order_by(
        "-here", F("last_message").desc(nulls_last=True), "name"
    )


def _messages(room: Room):
    return Message.objects.filter(room=room).select_related("user")


def history(room: Room, limit: int = HISTORY) -> list[Message]:
    """The last `limit` messages, oldest first."""
    return list(reversed(_messages(room).order_by("-id")[:limit]))


def messages_before(room: Room, before: int | None, limit: int = HISTORY) -> tuple[list[Message], bool]:
    """Up to `limit` messages older than `before` (all if None), oldest first; and whether older ones exist."""
    qs = _messages(room).order_by("-id")
    if before is not None:
        qs = qs.filter(id__lt=before)
    rows = list(qs[: limit + 1])
    return list(reversed(rows[:limit])), len(rows) > limit


def messages_after(room: Room, after: int, limit: int) -> list[Message]:
    """Up to `limit` messages with id > after, oldest first."""
    return list(_messages(room).filter(id__gt=after).order_by("id")[:limit])


def present_usernames(room: Room) -> list[str]:
    """Distinct users with a fresh presence row, sorted."""
    return sorted(
        set(
            Presence.objects.filter(room=room, seen__gte=presence_cutoff()).values_list("user__username", flat=True)
        )
    )
