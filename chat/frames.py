"""Every frame on /ws/chat/<room>/, and the schema of what the client may send."""

from jsonschema import Draft202012Validator

from realtime.frames import ERROR_FRAME, dumps, frame_schema, server_frames_validator

from .models import Message


def message_frame(m: Message) -> dict:
    return {"type": "message", "id": m.id, "user": m.user.username, "text": m.text, "created": m.created.isoformat()}


def history_frame(messages: list[Message], *, cursor: int, reset: bool = False, more: bool = False) -> dict:
    """`cursor`: the resume point (?after=) for this socket's next connection. `more`:
    older messages exist than these; the client loads them over HTTP with
    ?before=<"before">, the oldest id here."""
    frame = {"type": "history", "messages": [message_frame(m) for m in messages], "cursor": cursor}
    if reset:
        frame["reset"] = True
    if more and messages:
        frame["more"] = True
        frame["before"] = messages[0].id
    return frame


def synced_frame(cursor: int) -> dict:
    """Sent after catching up (a layer outage): the new resume point."""
    return {"type": "synced", "cursor": cursor}


def newest_that_fit(messages: list[Message], max_bytes: int) -> list[Message]:
    """The newest of `messages` (oldest first) whose frames fit in max_bytes together."""
    kept, size = [], 0
    for m in reversed(messages):
        size += len(dumps(message_frame(m))) + 1  # ASCII JSON: characters are bytes
        if size > max_bytes:
            break
        kept.append(m)
    return kept[::-1]


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


# --- the server frames of /ws/chat/<room>/, each defined once (docs/protocol.md) ---------
_id = {"type": "integer", "minimum": 0}
_MESSAGE = {"id": {"type": "integer", "minimum": 1}, "user": {"type": "string"}, "text": {"type": "string"},
            "created": {"type": "string", "format": "date-time"}}

SERVER_FRAME = server_frames_validator(
    frame_schema(
        "history",
        {"messages": {"type": "array", "items": frame_schema("message", _MESSAGE)}, "cursor": _id},
        {"reset": {"const": True}, "more": {"const": True}, "before": _id},
    ),
    frame_schema("message", _MESSAGE),
    frame_schema("presence", {"users": {"type": "array", "items": {"type": "string"}}}),
    frame_schema("message_removed", {"id": _id}),
    frame_schema("synced", {"cursor": _id}),
    ERROR_FRAME,
)
