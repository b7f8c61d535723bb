from django.conf import settings
from django.db import models


class Verb(models.TextChoices):
    FOLLOW = "follow"
    REPLY = "reply"
    MENTION = "mention"
    SITE_UPDATE = "site_update"


class Notification(models.Model):
    """One inform event. Its id is the resume point of every stream it belongs to.

    A personal notification has a recipient. A site update has none: it is stored once
    and belongs to the stream of every user who joined before it (User.site_since).
    """

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    verb = models.CharField(max_length=20, choices=Verb.choices)
    text = models.CharField(max_length=500)
    url = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)  # personal notifications only

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["recipient", "id"], name="inform_stream"),
            models.Index(
                fields=["recipient", "id"], condition=models.Q(read_at__isnull=True), name="inform_unread"
            ),
            models.Index(fields=["id"], condition=models.Q(recipient__isnull=True), name="inform_site_updates"),
        ]

    def __str__(self) -> str:
        return f"{self.verb} → {self.recipient or 'everyone'}: {self.text[:40]}"

    @property
    def is_site_update(self) -> bool:
        return self.recipient_id is None


class SiteUpdateRead(models.Model):
    """A receipt: this user read this site update (only above User.site_read_upto)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "notification"], name="site_read_once")]

    def __str__(self) -> str:
        return f"user {self.user_id} read {self.notification_id}"


class SiteUpdateManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(recipient__isnull=True)


class SiteUpdate(Notification):
    """Site updates alone, for the admin (adding one publishes it)."""

    objects = SiteUpdateManager()

    class Meta:
        proxy = True
