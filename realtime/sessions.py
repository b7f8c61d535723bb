"""Sockets never outlive their session: when a session ends (sign-out, password change,
deactivation), every socket opened with it closes, in every server process.

Each signed-in socket joins its user's auth group (realtime.hub). end_sessions()
sends one message there after the transaction commits; each process's hub closes the
matching local sockets with CLOSE_SESSION_ENDED. New handshakes are refused anyway
(mblog.ws_auth verifies the session and its password hash).

A socket authenticated by other means than the session cookie (an access token) has
scope["auth_key"] instead: a string that is never a session key, passed to
end_sessions() as one.
"""

import hashlib

from . import transport


def auth_group(user_id: int) -> str:
    return f"auth.{int(user_id)}"


def session_tag(session_key: str | None) -> str | None:
    """What a socket remembers of its session: enough to match, useless to steal."""
    return hashlib.sha256(session_key.encode()).hexdigest()[:24] if session_key else None


def end_sessions(user_id: int, session_key: str | None = None) -> None:
    """Close the user's sockets of that session, or all of them if session_key is None."""
    transport.group_send(auth_group(user_id), {"kind": "end_session", "session": session_tag(session_key)})
