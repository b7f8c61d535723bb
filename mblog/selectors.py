from inform.models import Notification

from .feed import FeedItem, post_item, reply_item, site_update_item
from .models import Post, Reply, User
from .services import MENTION


def activity_feed(limit: int = 30) -> list[FeedItem]:
    """Recent posts, replies and site updates, newest first (three queries)."""
    posts = Post.objects.select_related("author").order_by("-created")[:limit]
    replies = Reply.objects.select_related("author", "post").order_by("-created")[:limit]
    updates = Notification.objects.filter(recipient__isnull=True).select_related("actor").order_by("-id")[:limit]
    items = [post_item(p) for p in posts] + [reply_item(r) for r in replies] + [site_update_item(n) for n in updates]
    return sorted(items, key=lambda i: i.created, reverse=True)[:limit]


def mentioned_names(post: Post, replies: list[Reply]) -> set[str]:
    """The @names in a post and its replies that are people here (one query)."""
    names = {m.group(1).rstrip(".") for text in [post.body, *(r.body for r in replies)] for m in MENTION.finditer(text)}
    return set(User.objects.filter(username__in=names).values_list("username", flat=True)) if names else set()
