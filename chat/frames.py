"""Every frame on /ws/chat/<room>/, and the schema of what the client may send."""

from jsonschema import Draft202012Validator

from .models import Message


def message_frame(m: Message) -> dict:
    return {"type": "message", "id": m.id, "user": m.user.username, "text": m.text, "created": m.created.isoformat()}


def history_frame(messages: list[Message], *, cursor: int, reset: bool = False) -> dict:
    """`cursor`: the resume point (?after=) for this socket's next connection."""
    frame = {"type": "history", "messages": [message_frame(m) for m in messages], "cursor": cursor}
    if reset:
        frame["reset"] = True
    return frame


def synced_frame(cursor: int) -> dict:
    """Sent after catching up (a layer outage): the new resume point."""
    return {"type": "synced", "cursor": cursor}


def presence_frame(usernames: list[str]) -> dict:
    return {"type": "presence", "users": usernames}


def removed_frame(message_id: int) -> dict:
    return {"type": "message_removed", "id": message_id}


# Text length is checked after trimming (services.clean_text); the schema only bounds it.
CLIENT_FRAME = Draft202012Validator(
    {
        "type": "object",
        "required": ["type", "text"],
        "properties": {"type": {"const": "message"}, "text": {"type": "string", "maxLength": 4 * Message.MAX_LENGTH}},
    }
)
