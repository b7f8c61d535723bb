from django.contrib.auth.models import AbstractUser
from django.db import models
from django.urls import reverse


class User(AbstractUser):
    # A user's inform stream holds site updates with id > site_since (those published
    # after they joined). Site updates with id <= site_read_upto count as read; reads
    # above it are receipts (inform.SiteUpdateRead). Only inform reads them
    # (inform.selectors reads the stored values, never the caller's copy of the row).
    site_since = models.BigIntegerField(default=0)
    site_read_upto = models.BigIntegerField(default=0)

    def save(self, *args, **kwargs):
        if self._state.adding and not self.site_since:
            from inform.selectors import latest_notification_id

            self.site_since = latest_notification_id()
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("profile", args=[self.username])


class Post(models.Model):
    author = models.ForeignKey(User, on_delete=models.CASCADE, related_name="posts")
    title = models.CharField(max_length=200)
    body = models.TextField(max_length=20000)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("post_detail", args=[self.pk])


class Reply(models.Model):
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="replies")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    author = models.ForeignKey(User, on_delete=models.CASCADE, related_name="replies")
    body = models.TextField(max_length=5000)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created"]
        verbose_name_plural = "replies"

    def __str__(self) -> str:
        return f"{self.author}: {self.body[:40]}"

    def get_absolute_url(self) -> str:
        return f"{self.post.get_absolute_url()}#reply-{self.pk}"


class Follow(models.Model):
    follower = models.ForeignKey(User, on_delete=models.CASCADE, related_name="following")
    followed = models.ForeignKey(User, on_delete=models.CASCADE, related_name="followers")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["follower", "followed"], name="follow_once"),
            models.CheckConstraint(condition=~models.Q(follower=models.F("followed")), name="no_self_follow"),
        ]

    def __str__(self) -> str:
        return f"{self.follower_id} follows {self.followed_id}"
