from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from inform.services import notifications_expire


class Command(BaseCommand):
    help = (
        "Remove read notifications older than INFORM_EXPIRE_READ_AFTER_DAYS (default 90); unread ones "
        "stay, and so does the newest row (the clients' resume point). Safe to run from cron at any time."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--days", type=int, default=None, help="override INFORM_EXPIRE_READ_AFTER_DAYS for this run"
        )

    def handle(self, *args, days, **options):
        days = settings.INFORM_EXPIRE_READ_AFTER_DAYS if days is None else days
        if days < 1:
            raise CommandError("--days must be at least 1")
        before = timezone.now() - timedelta(days=days)
        personal, site = notifications_expire(before)
        self.stdout.write(
            f"removed {personal} read notification(s) and {site} site update(s) read by everyone, "
            f"created before {before:%Y-%m-%d %H:%M} UTC ({days} days)"
        )
