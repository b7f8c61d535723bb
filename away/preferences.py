"""Which notifications a person wants by email: the one place the email sender asks.

Until inform's per-kind preferences (issue 13) land, this is: replies, mentions and
follows by default, minus the kinds the person unsubscribed from (the one-click link
in every email, away.views.unsubscribe)."""

EMAIL_BY_DEFAULT = frozenset({"reply", "mention", "follow"})


def email_wanted(user, verb: str) -> bool:
    if verb not in EMAIL_BY_DEFAULT:
        return False
    from .models import AwayProfile

    try:
        profile = user.away
    except AwayProfile.DoesNotExist:
        return True
    return verb not in profile.unsubscribed


def push_wanted(user, verb: str) -> bool:
    """Web Push goes only to browsers the person subscribed: the same kinds as email
    by default; unsubscribing from a kind's email leaves its pushes on."""
    return verb in EMAIL_BY_DEFAULT
