from django.apps import AppConfig


class MblogConfig(AppConfig):
    name = "mblog"
    verbose_name = "Blog"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the receivers)
