from django.conf import settings
from django.db import models


class Verb(models.TextChoices):
    FOLLOW = "follow"
    REPLY = "reply"
    MENTION = "mention"
    SITE_UPDATE = "site_update"


class Kind(models.TextChoices):
    """What a person can turn on or off. Verbs, plus chat mentions apart from mentions
    in posts (a mention whose topic is a chat room)."""

    FOLLOW = "follow", "Follows"
    REPLY = "reply", "Replies"
    MENTION = "mention", "Mentions in posts and replies"
    SITE_UPDATE = "site_update", "Site updates"
    CHAT_MENTION = "chat_mention", "Mentions in chat"


def kind_of(verb: str, topic: str = "") -> str:
    return Kind.CHAT_MENTION if verb == Verb.MENTION and topic.startswith("room:") else verb


class Delivery(models.TextChoices):
    SITE = "site", "On site"
    EMAIL = "email", "On site and by email"
    OFF = "off", "Off"


class Notification(models.Model):
    """One inform event. Its id is the resume point of every stream it belongs to.

    A personal notification has a recipient. A site update has none: it is stored once
    and belongs to the stream of every user who joined before it (InformState.site_since).
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
    # What it is about ("post:9", "room:3"): muting or watching that topic applies to it.
    topic = models.CharField(max_length=100, blank=True, default="")
    # Grouped notifications ("alice, bob and 8 more replied to …"): one unread row per
    # recipient and group; a new event replaces it with a row of a new id (GROUPING).
    group = models.CharField(max_length=120, blank=True, default="")
    count = models.PositiveIntegerField(default=1)
    actors = models.JSONField(default=list, blank=True)  # newest first, a few names
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
            models.Index(
                fields=["recipient", "group"],
                condition=models.Q(read_at__isnull=True) & ~models.Q(group=""),
                name="inform_open_groups",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.verb} → {self.recipient or 'everyone'}: {self.text[:40]}"

    @property
    def is_site_update(self) -> bool:
        return self.recipient_id is None


class SiteUpdateRead(models.Model):
    """A receipt: this user read this site update (only above InformState.site_read_upto)."""

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


def _delivery_field():
    return models.CharField(max_length=5, choices=Delivery.choices, default=Delivery.SITE)


class InformState(models.Model):
    """A person's inform state: which site updates are theirs and read, what they have
    seen, how each kind reaches them.

    Every user gets a row when created (inform.apps). A user without one (bulk-created)
    reads as the defaults: every site update is theirs, nothing read or seen, everything
    on site. Readers join it with those defaults (inform.selectors) rather than create it."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.CASCADE, related_name="+")
    # The stream holds site updates with id > site_since (published after they joined).
    # Those with id <= site_read_upto count as read; reads above it are receipts
    # (SiteUpdateRead).
    site_since = models.BigIntegerField(default=0)
    site_read_upto = models.BigIntegerField(default=0)
    # The badge counts unread notifications with a higher id (unseen); the list and the
    # menu move it up when they are opened.
    seen_upto = models.BigIntegerField(default=0)
    # Bumped in the same transaction as every change of the person's counters (a
    # notification for them, a read, a "seen", a preference), under this row's lock, so
    # counters read together with it are ordered (services.bump_counters).
    counters_version = models.BigIntegerField(default=0)
    follow = _delivery_field()
    reply = _delivery_field()
    mention = _delivery_field()
    site_update = _delivery_field()
    chat_mention = _delivery_field()

    def __str__(self) -> str:
        return f"inform state of user {self.user_id}"


class PersonMute(models.Model):
    """Nothing that `muted` does notifies `user` (site updates excepted)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    muted = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "muted"], name="person_mute_once")]

    def __str__(self) -> str:
        return f"user {self.user_id} muted user {self.muted_id}"


class TopicPreference(models.Model):
    """Watching a topic (every reply under that post notifies you) or muting it (nothing
    about it does)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    topic = models.CharField(max_length=100)
    watch = models.BooleanField()  # False: muted

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "topic"], name="topic_preference_once")]
        indexes = [models.Index(fields=["topic"], condition=models.Q(watch=True), name="topic_watchers")]

    def __str__(self) -> str:
        return f"user {self.user_id} {'watches' if self.watch else 'muted'} {self.topic}"
