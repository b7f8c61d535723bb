"""What every socket shares on the wire: JSON text frames, error frames, and decoding
a client frame against a domain's schema."""

import json

from jsonschema import Draft202012Validator


def dumps(frame: dict) -> str:
    return json.dumps(frame, separators=(",", ":"))


def error_frame(code: str, detail: str) -> dict:
    return {"type": "error", "code": code, "detail": detail}


class BadFrame(ValueError):
    pass


# --- server frames: each defined once, as a schema (domains add theirs) ---------------


def frame_schema(type_: str, required: dict, optional: dict | None = None) -> dict:
    """A closed object schema for the server frame `type_`: these fields and no other."""
    properties = {"type": {"const": type_}, **required, **(optional or {})}
    return {"type": "object", "required": ["type", *required], "properties": properties,
            "additionalProperties": False}


ERROR_FRAME = frame_schema("error", {"code": {"type": "string"}, "detail": {"type": "string"}})


def server_frames_validator(*schemas: dict) -> Draft202012Validator:
    """One validator for a socket's server frames (tests check every frame against it)."""
    return Draft202012Validator({"oneOf": list(schemas)})


def parse_client_frame(text: str | None, validator: Draft202012Validator) -> dict:
    """Decode and validate one client frame; BadFrame says what is wrong, in words.
    Any malformed input ends here as BadFrame, never as another exception."""
    if text is None:
        raise BadFrame("frames must be JSON text, not binary")
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):  # deep nesting raises RecursionError
        raise BadFrame("frame is not valid JSON (or nested too deeply)") from None
    try:
        errors = sorted(validator.iter_errors(frame), key=lambda e: len(e.path))
    except RecursionError:
        raise BadFrame("frame is nested too deeply") from None
    if errors:
        error = errors[0]
        where = "/".join(str(p) for p in error.absolute_path) or "frame"
        raise BadFrame(f"{where}: {error.message}")
    return frame
