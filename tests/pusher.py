"""A long-lived sender for the fault tests (tests/faults.py Pusher): one process that
calls inform.services.send_inform in a loop, as a worker would, with whatever
DATABASE_URL / REDIS_URL its environment names.

    pusher.py --to alice,bob --count 300     each call: one notification for each of them
    pusher.py --everyone --count 12000       each call: one site update
    pusher.py --to alice --hold              one call inside a transaction that commits
                                             when a line "commit" arrives on stdin
    pusher.py --serve                        a line "USERNAME N" on stdin: N notifications
                                             for that user, one call each; answers "pushed"

Prints "sent N" every --progress calls and at the end, then "done" (flushed at once,
so a test can act when the burst is at a given point)."""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mblog.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from inform.services import send_inform  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--to", help="comma-separated usernames")
    who.add_argument("--everyone", action="store_true")
    who.add_argument("--serve", action="store_true")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--text-size", type=int, default=40)
    parser.add_argument("--url-size", type=int, default=0)
    parser.add_argument("--progress", type=int, default=10)
    parser.add_argument("--pace", type=float, default=0.0, help="seconds between calls")
    parser.add_argument("--hold", action="store_true")
    args = parser.parse_args()

    # Commits need not wait for the disk: these tests are about delivery, not durability,
    # and a pusher is faster this way.
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")

    to = None
    if args.to:
        names = args.to.split(",")
        to = list(get_user_model().objects.filter(username__in=names))
        assert len(to) == len(names), f"unknown users among {names}"
    pad = "x" * max(0, args.text_size - 12)
    url = "/" + "u" * (args.url_size - 1) if args.url_size else ""

    if args.serve:
        User = get_user_model()
        for line in sys.stdin:
            name, n = line.split()
            user = User.objects.get(username=name)
            for _ in range(int(n)):
                send_inform(to=user, verb="mention", text="pushed " + pad)
            print("pushed", flush=True)
        return

    if args.hold:
        with transaction.atomic():
            sent = send_inform(to=to, everyone=args.everyone, verb="mention", text="held " + pad)
            print("inserted", ",".join(str(n.id) for n in sent), flush=True)
            assert sys.stdin.readline().strip() == "commit"
        print("committed", flush=True)
        print("done", flush=True)
        return

    for i in range(1, args.count + 1):
        send_inform(to=to, everyone=args.everyone, verb="site_update" if args.everyone else "mention",
                    text=f"#{i:06d} {pad}", url=url)
        if i % args.progress == 0 or i == args.count:
            print("sent", i, flush=True)
        if args.pace:
            time.sleep(args.pace)
    print("done", flush=True)


if __name__ == "__main__":
    main()
