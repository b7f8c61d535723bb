"""Plumbing only: each receiver hands the saved row to one service."""

from django.db.models.signals import post_save
from django.dispatch import receiver

from . import services
from .models import Follow, Post, Reply


@receiver(post_save, sender=Follow, dispatch_uid="announce_follow")
def on_follow(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        services.announce_follow(instance)


@receiver(post_save, sender=Post, dispatch_uid="announce_post")
def on_post(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        services.announce_post(instance)


@receiver(post_save, sender=Reply, dispatch_uid="announce_reply")
def on_reply(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        services.announce_reply(instance)
