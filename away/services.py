"""Email for people who are away: one digest per person of what is still unread after
AWAY_EMAIL_DELAY, never while they are looking, never inside their quiet hours.

send_due_emails() is safe to run in several processes at once: each person's
AwayProfile row is claimed with SELECT … FOR UPDATE SKIP LOCKED, the digest is sent
while the row is held, and its watermark moves in the same transaction. A sender that
fails to send rolls back and the digest is tried again on the next run.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from inform.models import Notification, Verb

from . import presence, webpush
from .models import AwayProfile, PushSubscription
from .preferences import email_wanted, push_wanted

log = logging.getLogger(__name__)

UNSUBSCRIBE_SALT = "away.unsubscribe"
KIND_NAMES = {"reply": "replies", "mention": "mentions", "follow": "new followers", "site_update": "site updates"}


# --- quiet hours ------------------------------------------------------------------------


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def in_quiet_hours(profile: AwayProfile, now: datetime) -> bool:
    """Inside the person's window, in their time zone (a window may wrap past midnight)."""
    start, end = profile.quiet_start, profile.quiet_end
    if start is None or end is None or start == end:
        return False
    t: time = now.astimezone(zone(profile.time_zone)).time()
    return start <= t < end if start < end else t >= start or t < end


# --- one-click unsubscribe (RFC 8058) -------------------------------------------------


def unsubscribe_token(user_id: int, verbs) -> str:
    return signing.dumps({"u": user_id, "k": sorted(set(verbs))}, salt=UNSUBSCRIBE_SALT, compress=True)


def read_unsubscribe_token(token: str) -> tuple[int, list[str]]:
    """(user id, verbs); signing.BadSignature when the token was not made here."""
    data = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    verbs = [v for v in data["k"] if v in Verb.values]
    return int(data["u"]), verbs


def site_url() -> str:
    """Links in emails and pushes start here (the setting inform's emails use too)."""
    return settings.INFORM_EMAIL_SITE_URL.rstrip("/")


def unsubscribe_url(user_id: int, verbs) -> str:
    return site_url() + reverse("away_unsubscribe", args=[unsubscribe_token(user_id, verbs)])


def unsubscribe(user_id: int, verbs) -> AwayProfile | None:
    """None when the account is gone (nothing more will be sent to it anyway)."""
    from django.contrib.auth import get_user_model

    with transaction.atomic():
        if not get_user_model().objects.filter(pk=user_id).exists():
            return None
        AwayProfile.objects.get_or_create(user_id=user_id)
        profile = AwayProfile.objects.select_for_update().get(user_id=user_id)
        profile.unsubscribed = sorted(set(profile.unsubscribed) | set(verbs))
        profile.save(update_fields=["unsubscribed"])
        return profile


# --- digests ------------------------------------------------------------------------------


@dataclass
class Outcome:
    sent: list[int] = field(default_factory=list)  # user ids emailed
    pushed: list[int] = field(default_factory=list)  # user ids sent a Web Push
    looking: list[int] = field(default_factory=list)  # passed over: they were on the site
    quiet: list[int] = field(default_factory=list)  # waiting for their quiet hours to end
    failed: list[int] = field(default_factory=list)


def _pending(now: datetime, watermark: str):
    """Personal notifications above the person's watermark, young enough to send."""
    return Notification.objects.filter(
        recipient__isnull=False, created__gte=now - timedelta(seconds=settings.AWAY_EMAIL_MAX_AGE)
    ).filter(Q(recipient__away__isnull=True) | Q(id__gt=F(f"recipient__away__{watermark}")))


def due_user_ids(now: datetime) -> list[int]:
    """People with an unread notification older than the email delay not yet emailed,
    or (Web Push on) older than the push delay not yet pushed, to a subscribed browser."""
    email_cutoff = now - timedelta(seconds=settings.AWAY_EMAIL_DELAY)
    due = set(
        _pending(now, "emailed_upto").filter(read_at__isnull=True, created__lte=email_cutoff)
        .values_list("recipient_id", flat=True)
    )
    if webpush.configured():
        push_cutoff = now - timedelta(seconds=settings.AWAY_PUSH_DELAY)
        subscribed = PushSubscription.objects.values("user_id")
        due |= set(
            _pending(now, "pushed_upto").filter(read_at__isnull=True, created__lte=push_cutoff,
                                                 recipient_id__in=subscribed)
            .values_list("recipient_id", flat=True)
        )
    return sorted(due)


def send_due_emails(now: datetime | None = None) -> Outcome:
    """Email digests and Web Push, for everyone who has something due."""
    now = now or timezone.now()
    outcome = Outcome()
    presence.sweep_stale()
    user_ids = due_user_ids(now)
    AwayProfile.objects.bulk_create([AwayProfile(user_id=u) for u in user_ids], ignore_conflicts=True)
    for user_id in user_ids:
        try:
            with transaction.atomic():
                profile = (
                    AwayProfile.objects.select_for_update(skip_locked=True, of=("self",))
                    .select_related("user").filter(user_id=user_id).first()
                )
                if profile is None:  # another sender holds this person
                    continue
                if in_quiet_hours(profile, now):
                    outcome.quiet.append(user_id)
                    continue
                _send_digest(profile, now, outcome)
                if webpush.configured():
                    _send_push(profile, now, outcome)
        except Exception:
            log.exception("sending to user %s failed; it is tried again on the next run", user_id)
            outcome.failed.append(user_id)
    return outcome


def _due(profile: AwayProfile, now: datetime, watermark: str, delay: int) -> tuple[list, int] | None:
    """(unread notifications to send, new watermark), or None when nothing is due yet.
    Everything up to the watermark counts as handled: read, unwanted, or seen on the site."""
    pending = list(
        Notification.objects.filter(
            recipient_id=profile.user_id, id__gt=getattr(profile, watermark),
            created__gte=now - timedelta(seconds=settings.AWAY_EMAIL_MAX_AGE),
        ).select_related("actor").order_by("id")
    )
    cutoff = now - timedelta(seconds=delay)
    if not any(n.read_at is None and n.created <= cutoff for n in pending):
        return None  # read meanwhile, nothing due yet, or another sender got here first
    return [n for n in pending if n.read_at is None], pending[-1].id


def _send_digest(profile: AwayProfile, now: datetime, outcome: Outcome) -> None:
    _send_due(profile, now, outcome, "emailed_upto", settings.AWAY_EMAIL_DELAY, _email_digest)


def _send_push(profile: AwayProfile, now: datetime, outcome: Outcome) -> None:
    _send_due(profile, now, outcome, "pushed_upto", settings.AWAY_PUSH_DELAY, _push_to_browsers)


def _send_due(profile: AwayProfile, now: datetime, outcome: Outcome, watermark: str, delay: int, deliver) -> None:
    """What came due on one channel (email or push): sent with deliver(user, unread,
    outcome) unless the person is looking (they had the delay to see it on the site);
    either way the channel's watermark moves past it."""
    due = _due(profile, now, watermark, delay)
    if due is None:
        return
    unread, upto = due
    user = profile.user
    if presence.is_looking(user.pk):
        outcome.looking.append(user.pk)
    elif user.is_active:
        deliver(user, unread, outcome)
    setattr(profile, watermark, upto)
    profile.save(update_fields=[watermark])


def _email_digest(user, unread: list, outcome: Outcome) -> None:
    items = [n for n in unread if email_wanted(user, n.verb)]
    if items and user.email:
        _digest_message(user, items).send()
        outcome.sent.append(user.pk)


def _push_to_browsers(user, unread: list, outcome: Outcome) -> None:
    items = [n for n in unread if push_wanted(user, n.verb)]
    if not items:
        return
    payload = push_payload(items)
    delivered = False
    for subscription in PushSubscription.objects.filter(user=user):
        try:
            delivered = webpush.send(subscription, payload) or delivered
        except webpush.WebPushException as exc:  # one browser's push service failing stops no other
            log.warning("web push to user %s failed: %s", user.pk, exc)
    if delivered:
        outcome.pushed.append(user.pk)


def push_payload(items: list) -> dict:
    """What the service worker shows (static/away/sw.js): one notification per person per run."""
    latest = items[-1]
    if len(items) == 1:
        title = "mblog"
        url = site_url() + reverse("inform_open", args=[latest.pk])
    else:
        title = f"mblog: {len(items)} new notifications"
        url = site_url() + reverse("inform_list")
    return {"title": title, "body": latest.text, "url": url, "tag": f"inform-{latest.pk}", "id": latest.pk}


def _digest_message(user, items: list) -> EmailMultiAlternatives:
    kinds = sorted({n.verb for n in items})
    context = {
        "user": user,
        "items": [
            {"n": n, "link": site_url() + reverse("inform_open", args=[n.pk])} for n in items
        ],
        "site_url": site_url(),
        "settings_url": site_url() + reverse("away_settings"),
        "unsubscribe": [
            {"kind": KIND_NAMES.get(k, k), "url": unsubscribe_url(user.pk, [k])} for k in kinds
        ],
    }
    count = len(items)
    subject = f"mblog: {count} new notification{'s' if count != 1 else ''}"
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("away/digest.txt", context),
        to=[user.email],
        headers={
            # RFC 2369 + RFC 8058: the mail client's own unsubscribe button, one POST, no login.
            "List-Unsubscribe": f"<{unsubscribe_url(user.pk, kinds)}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "Auto-Submitted": "auto-generated",
        },
    )
    message.attach_alternative(render_to_string("away/digest.html", context), "text/html")
    return message
