"""Every frame the browser sees on /ws/inform/, and the schema of what it may send.

The wire format lives here and only here (tests check frames against it)."""

import json
from datetime import datetime

from jsonschema import Draft202012Validator

from .models import Notification

MAX_IDS_PER_READ = 500


def _iso(dt: datetime) -> str:
    return dt.isoformat()


def inform_frame(n: Notification, unread: int | None = None) -> dict:
    frame = {
        "type": "inform",
        "id": n.id,
        "verb": n.verb,
        "actor": n.actor.username if n.actor_id else None,
        "text": n.text,
        "url": n.url,
        "created": _iso(n.created),
    }
    if unread is not None:
        frame["unread"] = unread
    return frame


def unread_frame(unread: int) -> dict:
    return {"type": "unread", "unread": unread}


def feed_frame(*, event: str, actor: str | None, text: str, url: str, created: datetime) -> dict:
    return {"type": "feed", "event": event, "actor": actor, "text": text, "url": url, "created": _iso(created)}


def site_update_feed_frame(n: Notification) -> dict:
    """How an anonymous socket sees a site update."""
    return feed_frame(
        event="site_update", actor=n.actor.username if n.actor_id else None, text=n.text, url=n.url, created=n.created
    )


def error_frame(code: str, detail: str) -> dict:
    return {"type": "error", "code": code, "detail": detail}


def dumps(frame: dict) -> str:
    return json.dumps(frame, separators=(",", ":"))


_id = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}

CLIENT_FRAME = Draft202012Validator(
    {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"enum": ["sync", "read", "read_all"]}},
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
        ],
    }
)


class BadFrame(ValueError):
    pass


def parse_client_frame(text: str | None, validator: Draft202012Validator = CLIENT_FRAME) -> dict:
    """Decode and validate one client frame; BadFrame says what is wrong, in words."""
    if text is None:
        raise BadFrame("frames must be JSON text, not binary")
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):  # deep nesting raises RecursionError
        raise BadFrame("frame is not valid JSON") from None
    error = next(iter(sorted(validator.iter_errors(frame), key=lambda e: len(e.path))), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "frame"
        raise BadFrame(f"{where}: {error.message}")
    return frame
