from django.conf import settings
from django.db import models


class AccessToken(models.Model):
    """A personal access token for scripts and bots (tokens.services). The token itself is
    shown once, at creation; only its sha256 is stored. `prefix` is its public part, the
    row a presented token is looked up by."""

    READ = "read"
    WRITE = "write"
    SCOPES = [(READ, "Read only"), (WRITE, "Read and write")]

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="access_tokens")
    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=5, choices=SCOPES, default=READ)
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.scope}) of user {self.user_id}"

    @property
    def read_only(self) -> bool:
        return self.scope != self.WRITE
