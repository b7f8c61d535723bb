"""Chat rooms, their messages and who is in them now.

Presence is one row per open socket with a heartbeat timestamp (`seen`), refreshed by
the socket every CHAT_PRESENCE_HEARTBEAT seconds. A row older than CHAT_PRESENCE_STALE
seconds belongs to a socket whose process died without saying goodbye: it no longer
counts, and the next heartbeat in that room deletes it. Living in the database, presence
is the same for every server process.
"""

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.urls import reverse

ROOM_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"
room_name_validator = RegexValidator(
    ROOM_NAME_PATTERN, "Room names are 1–40 lowercase letters, digits, '-' or '_', starting with a letter or digit."
)


class Room(models.Model):
    name = models.CharField(max_length=40, unique=True, validators=[room_name_validator])
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("chat_room", args=[self.name])


class Message(models.Model):
    """The id orders a room's messages and is every client's resume point."""

    MAX_LENGTH = 2000

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    text = models.TextField(max_length=MAX_LENGTH)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["room", "id"], name="chat_room_messages")]

    def __str__(self) -> str:
        return f"{self.user} in {self.room}: {self.text[:40]}"


class Presence(models.Model):
    """One open socket in a room (a user with two tabs has two rows, and is listed once)."""

    conn = models.CharField(max_length=64, unique=True)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="presences")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    seen = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["room", "seen"], name="chat_presence_fresh")]

    def __str__(self) -> str:
        return f"{self.user} in {self.room} (seen {self.seen:%H:%M:%S})"
