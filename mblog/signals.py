"""Plumbing only: each receiver hands the saved row to one service."""

from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from realtime import sessions

from . import services
from .models import Follow, Post, Reply, User


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


# --- sockets never outlive their session (realtime.sessions) ----------------------


@receiver(user_logged_out, dispatch_uid="end_socket_session_on_logout")
def on_logout(sender, request, user, **kwargs):
    if user is not None:
        sessions.end_sessions(user.pk, request.session.session_key)


@receiver(pre_save, sender=User, dispatch_uid="socket_sessions_end_with_password_or_activity")
def on_user_saving(sender, instance, raw=False, **kwargs):
    password_changed = instance._password is not None  # set_password() ran
    instance._ends_sessions = not raw and not instance._state.adding and (
        password_changed
        or (not instance.is_active and User.objects.filter(pk=instance.pk, is_active=True).exists())
    )


@receiver(post_save, sender=User, dispatch_uid="end_socket_sessions_on_password_or_deactivation")
def on_user_saved(sender, instance, **kwargs):
    if getattr(instance, "_ends_sessions", False):
        instance._ends_sessions = False
        sessions.end_sessions(instance.pk)
