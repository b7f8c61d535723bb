"""Every frame the browser sees on /ws/inform/, and the schema of what it may send."""

from datetime import datetime

from jsonschema import Draft202012Validator

from realtime.frames import ERROR_FRAME, frame_schema, server_frames_validator
from realtime.frames import parse_client_frame as _parse

from .models import Notification

MAX_IDS_PER_READ = 500


def _iso(dt: datetime) -> str:
    return dt.isoformat()


def inform_frame(n: Notification, counters=None) -> dict:
    """`counters` (selectors.Counters), when given, adds the absolute `unread` and
    `unseen` after this notification, and their `version`."""
    frame = {
        "type": "inform",
        "id": n.id,
        "verb": n.verb,
        "actor": n.actor.username if n.actor_id else None,
        "text": n.text,
        "url": n.url,
        "created": _iso(n.created),
    }
    if n.group:
        # One entry of several events: it replaces the client's entry with the same group.
        frame["group"], frame["count"] = n.group, n.count
    if counters is not None:
        frame["unread"], frame["unseen"] = counters.unread, counters.unseen
        frame["version"] = list(counters.version)
    return frame


def unread_frame(counters) -> dict:
    """The full counter state (selectors.Counters): a client never adds or subtracts, and
    ignores one with a lower `version` than the counters it shows (docs/protocol.md)."""
    return {"type": "unread", "unread": counters.unread, "unseen": counters.unseen,
            "version": list(counters.version)}


def reset_frame(cursor: int) -> dict:
    """The client's resume point is unknown here: drop what it shows and reload it from
    the database; `cursor` is the resume point that reload starts from."""
    return {"type": "reset", "cursor": cursor}


def synced_frame(cursor: int) -> dict:
    """Everything of the stream with id <= cursor has been sent on this socket: the
    resume point for `sync` after a reconnect."""
    return {"type": "synced", "cursor": cursor}


def feed_frame(*, key: str, event: str, actor: str | None, text: str, url: str, created: datetime) -> dict:
    """`key` ("post:9") names the item once for every page, live or backfilled."""
    return {"type": "feed", "key": key, "event": event, "actor": actor, "text": text, "url": url,
            "created": _iso(created)}


def site_update_feed_frame(n: Notification) -> dict:
    """How an anonymous socket sees a site update."""
    return feed_frame(
        key=f"site_update:{n.pk}", event="site_update", actor=n.actor.username if n.actor_id else None, text=n.text,
        url=n.url, created=n.created,
    )


_id = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}

CLIENT_FRAME = Draft202012Validator(
    {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"enum": ["sync", "read", "read_all", "presence"]}},
        "allOf": [
            {
                "if": {"properties": {"type": {"const": "sync"}}},
                "then": {"required": ["after"], "properties": {"after": _id}},
            },
            {
                "if": {"properties": {"type": {"const": "read"}}},
                "then": {
                    "required": ["ids"],
                    "properties": {
                        "ids": {"type": "array", "items": _id, "minItems": 1, "maxItems": MAX_IDS_PER_READ}
                    },
                },
            },
            {
                # This tab is in view and in use (away.presence): sent on open and on change.
                "if": {"properties": {"type": {"const": "presence"}}},
                "then": {"required": ["visible"], "properties": {"visible": {"type": "boolean"}}},
            },
        ],
    }
)


def parse_client_frame(text: str | None) -> dict:
    return _parse(text, CLIENT_FRAME)


# --- the server frames of /ws/inform/, each defined once (docs/protocol.md) --------------
_count = {"type": "integer", "minimum": 0}
_text = {"type": "string"}
_name = {"type": ["string", "null"]}
_when = {"type": "string", "format": "date-time"}
# (the person's counters version, the newest notification id): compared as pairs
_version = {"type": "array", "prefixItems": [_count, _count], "minItems": 2, "maxItems": 2}

SERVER_FRAME = server_frames_validator(
    frame_schema(
        "inform",
        {"id": {"type": "integer", "minimum": 1}, "verb": {"enum": ["follow", "reply", "mention", "site_update"]},
         "actor": _name, "text": _text, "url": _text, "created": _when},
        {"unread": _count, "unseen": _count, "version": _version, "group": _text,
         "count": {"type": "integer", "minimum": 1}},
    ),
    frame_schema("unread", {"unread": _count, "unseen": _count, "version": _version}),
    frame_schema("synced", {"cursor": _count}),
    frame_schema("reset", {"cursor": _count}),
    frame_schema(
        "feed",
        {"key": _text, "event": {"enum": ["post", "reply", "site_update"]}, "actor": _name, "text": _text,
         "url": _text, "created": _when},
    ),
    ERROR_FRAME,
)
