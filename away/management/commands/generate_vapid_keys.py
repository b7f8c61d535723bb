"""Print a fresh VAPID key pair as env-file lines (docs/away.md)."""

from django.core.management.base import BaseCommand

from away.webpush import generate_vapid_keys


class Command(BaseCommand):
    help = "Generate the VAPID key pair Web Push needs; put the lines in the env file."

    def handle(self, *args, **options):
        public, private = generate_vapid_keys()
        self.stdout.write(f"VAPID_PUBLIC_KEY={public}\nVAPID_PRIVATE_KEY={private}\n")
