from django.apps import AppConfig


class InformConfig(AppConfig):
    name = "inform"
    verbose_name = "Notifications"
