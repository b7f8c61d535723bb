"""Pushes of the chat app: a room's frames go to the room's group."""

from realtime import transport


def room_group(room_id: int) -> str:
    return f"chat.{int(room_id)}"


def notify_room(room_id: int, frame: dict, *, after_commit: bool = True) -> None:
    """A chat frame for everyone in the room. Presence-style throwaway frames pass after_commit=False."""
    transport.group_send(room_group(room_id), {"frame": frame}, after_commit=after_commit)
