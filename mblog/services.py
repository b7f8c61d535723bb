"""Writes of the blog. Announcements (notifications, feed events) are made by the
signal receivers in signals.py, which call the announce_* functions here."""

import re

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from inform import push
from inform.models import Notification, Verb
from inform.services import send_inform

from . import feed
from .errors import ApplicationError
from .models import Follow, Post, Reply, User

MENTION = re.compile(r"(?<![\w@])@([\w.+-]{1,150})")
EXCERPT = 120


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """One line of at most `limit` characters, cut at a word boundary with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,.;:-") + "…"


def post_create(*, author: User, title: str, body: str) -> Post:
    return Post.objects.create(author=author, title=title.strip(), body=body.strip())


def reply_create(*, author: User, post: Post, body: str, parent: Reply | None = None) -> Reply:
    if parent is not None and parent.post_id != post.pk:
        raise ApplicationError("the parent reply belongs to another post")
    return Reply.objects.create(author=author, post=post, parent=parent, body=body.strip())


def follow_toggle(*, follower: User, followed: User) -> bool:
    """Follow or unfollow; returns whether follower now follows followed."""
    if follower.pk == followed.pk:
        raise ApplicationError("you cannot follow yourself")
    with transaction.atomic():
        deleted, _ = Follow.objects.filter(follower=follower, followed=followed).delete()
        if deleted:
            return False
        Follow.objects.create(follower=follower, followed=followed)
        return True


def mentioned_users(text: str) -> list[User]:
    """The users @mentioned in text: the first settings.MAX_MENTIONS distinct names only,
    so one message cannot notify a crowd."""
    names = list(dict.fromkeys(m.group(1).rstrip(".") for m in MENTION.finditer(text)))[: settings.MAX_MENTIONS]
    return list(User.objects.filter(username__in=names)) if names else []


def announce_follow(follow: Follow) -> None:
    """ "x followed you", once: following again after an unfollow tells nobody again.
    Follows group (inform.services.group_keys) and a group keeps only its newest few
    names (GROUP_NAMES): those are not told again either; an older member of a large
    group who unfollows and follows again is."""
    actor = follow.follower
    told = Notification.objects.filter(recipient=follow.followed, verb=Verb.FOLLOW).filter(
        Q(actor=actor) | Q(count__gt=1)
    )
    if any(a == actor.pk or actor.username in names for a, names in told.values_list("actor_id", "actors")):
        return
    send_inform(
        to=follow.followed, verb=Verb.FOLLOW, actor=actor, text=f"{actor.username} followed you",
        url=actor.get_absolute_url(), summary="followed you",
    )


def announce_post(post: Post) -> None:
    author = post.author
    push.notify_feed(**feed.post_item(post).as_dict())
    _announce_mentions(author, post.body, post.get_absolute_url(), post, exclude=set())


def announce_reply(reply: Reply) -> None:
    """The replied-to person and whoever watches the post (send_inform adds them)."""
    author, url = reply.author, reply.get_absolute_url()
    target = reply.parent.author if reply.parent_id else reply.post.author
    told = send_inform(
        to=[target] if target.pk != author.pk else [], verb=Verb.REPLY, actor=author,
        text=f"{author.username} replied to “{reply.post.title}”: {excerpt(reply.body)}", url=url,
        topic=topic_of(reply.post), summary=f"replied to “{reply.post.title}”",
    )
    push.notify_feed(**feed.reply_item(reply).as_dict())
    # One notification per person for one reply: the reply one says it already.
    _announce_mentions(author, reply.body, url, reply.post, exclude={target.pk, *(n.recipient_id for n in told)})


def topic_of(post: Post) -> str:
    """What muting or watching a post is about (inform preferences)."""
    return f"post:{post.pk}"


def _announce_mentions(author: User, text: str, url: str, post: Post, *, exclude: set[int]) -> None:
    users = [u for u in mentioned_users(text) if u.pk not in exclude and u.pk != author.pk]
    if users:
        send_inform(
            to=users, verb=Verb.MENTION, actor=author,
            text=f"{author.username} mentioned you in “{post.title}”: {excerpt(text)}", url=url,
            topic=topic_of(post),
        )
