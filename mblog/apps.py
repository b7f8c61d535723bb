import gc

from django.apps import AppConfig


class MblogConfig(AppConfig):
    name = "mblog"
    verbose_name = "Blog"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the receivers)

        # What Django loaded lives as long as the process: out of the collector's way.
        # Every process that stores and pushes notifications allocates thousands of
        # objects per event, and a full collection walked the whole loaded project each
        # time: 100 ms pauses every dozen replies in a benchmark sender
        # (docs/performance.md). Objects made later are collected as usual.
        gc.collect()
        gc.freeze()
