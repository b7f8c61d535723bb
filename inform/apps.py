from django.apps import AppConfig
from django.conf import settings


class InformConfig(AppConfig):
    name = "inform"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_save

        post_save.connect(_user_created, sender=get_user_model(), dispatch_uid="inform_state_for_new_users")
        if not settings.REDIS_URL:
            # The in-process layer cannot hear other processes: tail the table instead.
            from realtime.hub import add_local_source

            from .tail import start

            add_local_source(start)


def _user_created(sender, instance, created, raw=False, **kwargs):
    """A new person's stream starts after the site updates published before they joined."""
    if created and not raw:
        from .models import InformState
        from .selectors import latest_notification_id

        InformState.objects.get_or_create(user=instance, defaults={"site_since": latest_notification_id()})
