"""Pushes of the inform app: who gets which frame. Views, signals, services, admin
actions and commands call the notify_* functions; they build the frames and group
names and hand them to realtime.transport, after the current transaction commits."""

from collections.abc import Iterable

from realtime import transport

from . import frames

SITE_GROUP = "site"


def user_group(user_id: int) -> str:
    return f"user.{int(user_id)}"


def notify_informs(notifications: Iterable, counters: dict | None = None) -> None:
    """Push stored personal notifications to their recipients, with their counters: those
    given (read in the storing transaction, as they are at its commit: send_inform), or
    read after the commit."""
    notifications = list(notifications)

    def push() -> None:
        from .selectors import counters_of

        # A recipient deleted since has no count.
        counts = counters if counters is not None else counters_of({n.recipient_id for n in notifications})
        transport.group_send_many(
            [(user_group(n.recipient_id), {"frame": frames.inform_frame(n, counters=counts[n.recipient_id])})
             for n in notifications if n.recipient_id in counts],
            after_commit=False,
        )

    transport.on_commit(push)


def notify_site_update(notification) -> None:
    """One message for every process: signed-in sockets get an inform frame, anonymous a feed frame."""
    transport.group_send(
        SITE_GROUP,
        {
            "frame": frames.inform_frame(notification),
            "anonymous_frame": frames.site_update_feed_frame(notification),
        },
    )


def notify_feed(*, key: str, event: str, actor: str | None, text: str, url: str, created) -> None:
    frame = frames.feed_frame(key=key, event=event, actor=actor, text=text, url=url, created=created)
    transport.group_send(SITE_GROUP, {"frame": frame})


def notify_unread(user) -> None:
    """Every socket of the user learns the absolute counters (read or seen in another tab)."""

    def push() -> None:
        from .selectors import counters

        frame = frames.unread_frame(counters(user))
        transport.group_send(user_group(user.pk), {"frame": frame}, after_commit=False)

    transport.on_commit(push)
