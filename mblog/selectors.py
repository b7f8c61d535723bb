from dataclasses import dataclass
from datetime import datetime

from inform.models import Notification

from .models import Post, Reply, User
from .services import MENTION, excerpt


@dataclass
class FeedItem:
    """What the home page lists; the live `feed` frames carry the same fields."""

    event: str
    actor: str | None
    text: str
    url: str
    created: datetime


def activity_feed(limit: int = 30) -> list[FeedItem]:
    """Recent posts, replies and site updates, newest first (three queries)."""
    posts = Post.objects.select_related("author").order_by("-created")[:limit]
    replies = Reply.objects.select_related("author", "post").order_by("-created")[:limit]
    updates = Notification.objects.filter(recipient__isnull=True).select_related("actor").order_by("-id")[:limit]
    items = [FeedItem("post", p.author.username, p.title, p.get_absolute_url(), p.created) for p in posts]
    items += [
        FeedItem("reply", r.author.username, f"on “{r.post.title}”: {excerpt(r.body)}", r.get_absolute_url(), r.created)
        for r in replies
    ]
    items += [
        FeedItem("site_update", n.actor.username if n.actor_id else None, n.text, n.url, n.created) for n in updates
    ]
    return sorted(items, key=lambda i: i.created, reverse=True)[:limit]


def mentioned_names(post: Post, replies: list[Reply]) -> set[str]:
    """The @names in a post and its replies that are people here (one query)."""
    names = {m.group(1).rstrip(".") for text in [post.body, *(r.body for r in replies)] for m in MENTION.finditer(text)}
    return set(User.objects.filter(username__in=names).values_list("username", flat=True)) if names else set()
