"""The home page's activity feed: posts, replies and site updates. One item shape for
the rendered page, the live `feed` frames and the JSON a reconnecting page backfills
from; `key` ("post:9") lets the page show each item once."""

from dataclasses import asdict, dataclass
from datetime import datetime

from . import services


@dataclass
class FeedItem:
    key: str
    event: str
    actor: str | None
    text: str
    url: str
    created: datetime

    def as_dict(self) -> dict:
        return asdict(self)


def post_item(post) -> FeedItem:
    return FeedItem(f"post:{post.pk}", "post", post.author.username, post.title, post.get_absolute_url(), post.created)


def reply_item(reply) -> FeedItem:
    text = f"on “{reply.post.title}”: {services.excerpt(reply.body)}"
    return FeedItem(f"reply:{reply.pk}", "reply", reply.author.username, text, reply.get_absolute_url(), reply.created)


def site_update_item(n) -> FeedItem:
    actor = n.actor.username if n.actor_id else None
    return FeedItem(f"site_update:{n.pk}", "site_update", actor, n.text, n.url, n.created)
