"""Reaching people who are away: where they are looking, and what they were emailed.

Presence is one row per signed-in socket that has reported its page's visibility, with a
heartbeat timestamp (`seen`) that the socket's process refreshes for all its sockets at
once every AWAY_PRESENCE_HEARTBEAT seconds. A row older than AWAY_PRESENCE_STALE belongs
to a process that died without saying goodbye: it no longer counts. Living in the
database, presence is the same for every daphne process.
"""

from django.conf import settings
from django.db import models


class Presence(models.Model):
    conn = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    visible = models.BooleanField(default=False)
    seen = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["user", "seen"], name="away_presence_fresh")]

    def __str__(self) -> str:
        return f"{self.user} {'looking' if self.visible else 'away'} (seen {self.seen:%H:%M:%S})"


class AwayProfile(models.Model):
    """Per user: the email watermark, email kinds unsubscribed from, and quiet hours.

    `emailed_upto`: every personal notification of this user with id <= it has been
    emailed or passed over (read, or due while the person was looking). A sender claims
    the row with SELECT … FOR UPDATE SKIP LOCKED, so two senders never email one person
    at once, and moves the watermark in the transaction that sends the digest.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.CASCADE, related_name="away"
    )
    emailed_upto = models.BigIntegerField(default=0)
    pushed_upto = models.BigIntegerField(default=0)  # the same, for Web Push
    unsubscribed = models.JSONField(default=list, blank=True)  # verbs never emailed
    time_zone = models.CharField(max_length=64, default="UTC")
    quiet_start = models.TimeField(null=True, blank=True)
    quiet_end = models.TimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"away settings of {self.user_id}"


class PushSubscription(models.Model):
    """One browser that accepted Web Push (the Push API's PushSubscription). Removed
    when its push service answers 404 or 410 (expired or unsubscribed)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    endpoint = models.CharField(max_length=1000, unique=True)
    p256dh = models.CharField(max_length=200)
    auth = models.CharField(max_length=100)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"push subscription of {self.user_id}"

    def info(self) -> dict:
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}
