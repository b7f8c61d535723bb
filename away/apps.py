from django.apps import AppConfig


class AwayConfig(AppConfig):
    name = "away"
    default_auto_field = "django.db.models.BigAutoField"
