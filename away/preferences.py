"""Which notifications a person wants by email or push: the one place the senders ask.

The away digest emails replies, mentions and follows that are set "on site" in
inform's preferences (/inform/settings/) and still unread after the delay. A kind set
"off" is never sent; a kind set "by email" was emailed at once by inform itself, so
the digest leaves it out rather than mail it twice. On top, the person may have
unsubscribed from a kind's digests with the one-click link in an email
(away.views.unsubscribe)."""

from inform.models import Delivery, InformState

EMAIL_BY_DEFAULT = frozenset({"reply", "mention", "follow"})


def _deliveries(user) -> dict:
    """The person's delivery per kind, read once per user object."""
    cached = getattr(user, "_away_deliveries", None)
    if cached is None:
        row = InformState.objects.filter(user_id=user.pk).values(*EMAIL_BY_DEFAULT).first()
        cached = row or {}
        user._away_deliveries = cached
    return cached


def email_wanted(user, verb: str) -> bool:
    if verb not in EMAIL_BY_DEFAULT:
        return False
    if _deliveries(user).get(verb, Delivery.SITE) != Delivery.SITE:
        return False
    from .models import AwayProfile

    try:
        profile = user.away
    except AwayProfile.DoesNotExist:
        return True
    return verb not in profile.unsubscribed


def push_wanted(user, verb: str) -> bool:
    """Web Push goes only to browsers the person subscribed: replies, mentions and follows
    that are not "off" (unsubscribing from a kind's emails leaves its pushes on)."""
    return verb in EMAIL_BY_DEFAULT and _deliveries(user).get(verb, Delivery.SITE) != Delivery.OFF
