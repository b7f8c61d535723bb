"""Email and Web Push what is due (away.services.send_due_emails). Run from cron every
minute, or under supervisor with --every SECONDS; several at once never send anything twice."""

import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from away import services


class Command(BaseCommand):
    help = "Email each person a digest of notifications still unread after AWAY_EMAIL_DELAY."

    def add_arguments(self, parser):
        parser.add_argument("--every", type=float, default=0, help="run again every SECONDS, forever")

    def handle(self, *args, every: float, **options):
        while True:
            outcome = services.send_due_emails()
            if outcome.sent or outcome.failed or options["verbosity"] > 1:
                self.stdout.write(
                    f"emailed {len(outcome.sent)}, pushed to {len(outcome.pushed)}, passed over {len(outcome.looking)} on the site, "
                    f"{len(outcome.quiet)} in quiet hours, {len(outcome.failed)} failed"
                )
            if not every:
                if outcome.failed:
                    raise SystemExit(1)
                return
            close_old_connections()  # a long-lived loop: drop a connection the database closed
            time.sleep(every)
