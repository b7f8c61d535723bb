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
