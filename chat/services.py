"""Writes of the chat app. Every push goes through chat.push, after the write commits."""

import re

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from inform.models import Verb
from inform.services import send_inform
from mblog.errors import ApplicationError
from mblog.throttle import Budget, wait_words
from realtime import ordering

from . import frames, push, selectors
from .models import Message, Presence, Room, room_name_validator


class ChatError(ApplicationError):
    """Bad input; nothing was changed."""


class RateLimited(ChatError):
    """The author used up their message budget; nothing was changed."""


# One budget per user for chat messages, whether they come over a socket or an HTTP POST.
MESSAGE_BUDGET = Budget("chat_user")


def clean_room_name(name: str) -> str:
    name = (name or "").strip().lower()
    try:
        room_name_validator(name)
    except ValidationError as exc:
        raise ChatError(exc.messages[0]) from None
    return name


def room_get_or_create(*, name: str, by=None) -> Room:
    """The room of that name, created if it does not exist yet (any signed-in user may)."""
    name = clean_room_name(name)
    room, _ = Room.objects.get_or_create(name=name, defaults={"created_by": by})
    return room


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(text: str) -> str:
    text = (text or "").strip()
    if not 1 <= len(text) <= Message.MAX_LENGTH:
        raise ChatError(f"text must be 1–{Message.MAX_LENGTH} characters after trimming (got {len(text)})")
    if _CONTROL.search(text):
        raise ChatError("text must not contain control characters")
    return text


def chat_message_post(*, room: Room, author, text: str, budgeted: bool = False) -> Message:
    """Store the message, then (after commit) broadcast it with its id and inform @mentioned users.

    budgeted=True (what a user sends, over a socket or HTTP) first takes one message from
    the author's budget, or raises RateLimited."""
    from mblog.services import mentioned_users

    if budgeted and not MESSAGE_BUDGET.hit(author.pk):
        raise RateLimited(f"too many messages; wait {wait_words(MESSAGE_BUDGET.retry_after(author.pk))}")
    text = clean_text(text)
    with transaction.atomic():
        ordering.take_turn("chat", room.id)
        m = Message.objects.create(room=room, user=author, text=text)
        push.notify_room(room.id, frames.message_frame(m))
        mentioned = [u for u in mentioned_users(text) if u.pk != author.pk]
        if mentioned:
            send_inform(
                to=mentioned,
                verb=Verb.MENTION,
                actor=author,
                text=f"{author.username} mentioned you in #{room.name}: {text[:120]}",
                url=room.get_absolute_url(),
                topic=f"room:{room.id}",
            )
    return m


def chat_messages_delete(messages) -> int:
    """Delete messages (admin); everyone in their rooms is told to remove them."""
    rows = list(messages.values_list("id", "room_id")) if hasattr(messages, "values_list") else [
        (m.id, m.room_id) for m in messages
    ]
    with transaction.atomic():
        Message.objects.filter(id__in=[i for i, _ in rows]).delete()
        for message_id, room_id in rows:
            push.notify_room(room_id, frames.removed_frame(message_id))
    return len(rows)


# --- presence: one row per open socket, refreshed by its heartbeat ----------------
# Each function returns (usernames present now, whether they may have changed) and, if
# they may have, pushes the new list to the room.


def _sweep(room: Room) -> bool:
    """Delete rows of sockets whose process stopped beating; True if there were any."""
    deleted, _ = Presence.objects.filter(room=room, seen__lt=selectors.presence_cutoff()).delete()
    return deleted > 0


def _is_present(room: Room, user) -> bool:
    return Presence.objects.filter(room=room, user=user, seen__gte=selectors.presence_cutoff()).exists()


def _present(room: Room, changed: bool) -> tuple[list[str], bool]:
    """Who is here now; if that may have changed, everyone in the room is told at once
    (presence is state, not history: the next change heals a lost frame)."""
    users = selectors.present_usernames(room)
    if changed:
        push.notify_room(room.id, frames.presence_frame(users), after_commit=False)
    return users, changed


def presence_enter(*, room: Room, user, conn: str) -> tuple[list[str], bool]:
    was_here = _is_present(room, user)
    swept = _sweep(room)
    Presence.objects.create(room=room, user=user, conn=conn, seen=timezone.now())
    return _present(room, swept or not was_here)


def presence_beat(*, room: Room, user, conn: str) -> tuple[list[str], bool]:
    """The socket's heartbeat: refresh its row (re-create it if a sweep took it) and sweep the room."""
    came_back = False
    if not Presence.objects.filter(conn=conn).update(seen=timezone.now()):
        came_back = not _is_present(room, user)
        Presence.objects.create(room=room, user=user, conn=conn, seen=timezone.now())
    swept = _sweep(room)
    return _present(room, swept or came_back)


def presence_leave(*, room: Room, user, conn: str) -> tuple[list[str], bool]:
    Presence.objects.filter(conn=conn).delete()
    swept = _sweep(room)
    return _present(room, swept or not _is_present(room, user))
