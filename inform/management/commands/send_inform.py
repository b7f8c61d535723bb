from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from inform.models import Verb
from inform.services import InformError, send_inform


class Command(BaseCommand):
    help = "Store a notification for each recipient (or one site update for everyone) and push it live."

    def add_arguments(self, parser):
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--to", action="append", metavar="USERNAME", help="recipient; repeat for several")
        who.add_argument("--all", action="store_true", help="a site update for every user and every open socket")
        parser.add_argument("--verb", required=True, help=f"one of: {', '.join(Verb.values)}")
        parser.add_argument("--text", required=True)
        parser.add_argument("--url", default="")

    def handle(self, *args, to, all, verb, text, url, **options):
        if verb not in Verb.values:
            raise CommandError(f"unknown verb {verb!r}; use one of: {', '.join(Verb.values)}")
        if all:
            recipients = None
        else:
            User = get_user_model()
            found = {u.username: u for u in User.objects.filter(username__in=to)}
            unknown = [name for name in to if name not in found]
            if unknown:
                raise CommandError(f"unknown user(s): {', '.join(unknown)}; nothing was sent")
            recipients = [found[name] for name in dict.fromkeys(to)]
        try:
            sent = send_inform(to=recipients, everyone=all, verb=verb, text=text, url=url)
        except InformError as exc:
            raise CommandError(str(exc)) from exc
        if all:
            self.stdout.write(f"site update {sent[0].id} published to everyone")
        else:
            self.stdout.write(f"sent {len(sent)} notification(s): ids {', '.join(str(n.id) for n in sent)}")
