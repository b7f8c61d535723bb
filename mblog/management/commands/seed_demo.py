from django.core.management.base import BaseCommand
from django.db import transaction

from mblog.models import Follow, Post, Reply, User
from mblog.services import follow_toggle, post_create, reply_create

PASSWORD = "demo-pass-123"
POSTS = [
    ("alice", "Two pointers, explained with pictures", "The trick is to move the slower pointer only when… @bob what do you think?"),
    ("bob", "My DP checklist", "1. State. 2. Transition. 3. Base case. 4. Order of evaluation."),
    ("carol", "Weekly contest 420 recap", "Q3 was a sliding window in disguise."),
]


class Command(BaseCommand):
    help = (
        "Create demo users alice, bob and carol and the staff account admin (password demo-pass-123), "
        "with posts, replies and follows. Idempotent."
    )

    @transaction.atomic
    def handle(self, *args, **options):
        users = {}
        for name in ("alice", "bob", "carol"):
            user, created = User.objects.get_or_create(username=name, defaults={"email": f"{name}@example.com"})
            if created:
                user.set_password(PASSWORD)
                user.save()
            users[name] = user
        # A way into /admin/ for whoever runs the demo; never a production command.
        admin, created = User.objects.get_or_create(
            username="admin", defaults={"email": "admin@example.com", "is_staff": True, "is_superuser": True}
        )
        if created:
            admin.set_password(PASSWORD)
            admin.save()
        for author, title, body in POSTS:
            post = Post.objects.filter(author=users[author], title=title).first()
            if post is None:
                post = post_create(author=users[author], title=title, body=body)
            if author == "alice" and not Reply.objects.filter(post=post).exists():
                first = reply_create(author=users["bob"], post=post, body="Nice, the picture helps a lot.")
                reply_create(author=users["carol"], post=post, parent=first, body="@bob agreed!")
        for follower, followed in (("bob", "alice"), ("carol", "alice"), ("alice", "bob")):
            if not Follow.objects.filter(follower=users[follower], followed=users[followed]).exists():
                follow_toggle(follower=users[follower], followed=users[followed])
        self.stdout.write(f"demo data ready: alice, bob, carol and staff account admin (password {PASSWORD})")
