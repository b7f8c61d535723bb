#!/usr/bin/env python3
"""Print a user's mblog notifications as they arrive, each exactly once, one line each.

    export MBLOG_TOKEN=mbt_...            # make one at /settings/tokens/ (read-only is enough)
    python clients/mblog_tail.py --url http://127.0.0.1:8000 --state ~/.mblog_tail.json

Each line is one notification as JSON (`--format text` for people):
    {"id": 42, "verb": "reply", "actor": "bob", "text": "…", "url": "/posts/9/#reply-3", "created": "…"}

How it keeps its promise (docs/protocol.md):
- On every (re)connect it sends `sync {after: cursor}`; the server answers with every
  notification after it, then `synced {cursor: C}`. C is the resume point, kept in the
  state file with the ids printed above it; a live `inform` frame never moves it.
- Ids at or below the cursor, or already printed, are dropped: a reconnect may repeat
  what arrived live. A restart with the same state file carries on where it stopped.
- A dropped connection is retried with exponential backoff and full jitter (a random
  wait between 0 and min(--max-delay, 0.5 s × 2^attempt)), reset once a sync completes.
- A refused token (revoked, unknown) ends it with exit status 2; Ctrl-C with 0.

The state is written after each line is printed: a process killed between the two
prints that line again when restarted (at least once); a lost connection never does.
Needs `websockets` (in requirements.txt).
"""

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import websockets

FIELDS = ("id", "verb", "actor", "text", "url", "created")
CLOSE_FORBIDDEN = 4403  # not coming back: stop instead of retrying
TOKEN_REFUSED = 2


class State:
    """The resume point and the ids printed above it, in a small JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cursor = 0
        self.seen: set[int] = set()
        if path.exists():
            data = json.loads(path.read_text() or "{}")
            self.cursor = int(data.get("cursor", 0))
            self.seen = {int(i) for i in data.get("seen", ())}

    def is_new(self, notification_id: int) -> bool:
        return notification_id > self.cursor and notification_id not in self.seen

    def printed(self, notification_id: int) -> None:
        self.seen.add(notification_id)
        self.save()

    def synced(self, cursor: int) -> None:
        """Everything up to cursor has been received (and so printed)."""
        self.cursor = cursor
        self.seen = {i for i in self.seen if i > cursor}
        self.save()

    def reset(self, cursor: int) -> None:
        """The server cannot catch us up (its database is not the one we followed)."""
        self.cursor, self.seen = cursor, set()
        self.save()

    def save(self) -> None:
        data = json.dumps({"cursor": self.cursor, "seen": sorted(self.seen)})
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name + ".")
        with os.fdopen(fd, "w") as f:
            f.write(data)
        os.replace(tmp, self.path)  # never half a file, whenever we are stopped


def socket_url(site: str) -> str:
    parts = urlsplit(site)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws/inform/", "", ""))


def render(frame: dict, fmt: str) -> str:
    if fmt == "text":
        who = f"{frame['actor']} " if frame.get("actor") else ""
        return f"{frame['created']} [{frame['verb']}] {who}{frame['text']} {frame.get('url') or ''}".rstrip()
    return json.dumps({k: frame.get(k) for k in FIELDS}, ensure_ascii=False)


def retry_delay(attempt: int, max_delay: float, base: float = 0.5) -> float:
    """Full jitter: clients that lost the server together do not come back together."""
    return random.uniform(0, min(max_delay, base * 2 ** min(attempt, 32)))


def log(message: str) -> None:
    print(f"mblog_tail: {message}", file=sys.stderr, flush=True)


async def tail(site: str, token: str, state: State, *, fmt: str = "json", max_delay: float = 30.0,
               out=sys.stdout) -> int:
    url = socket_url(site)
    headers = {"Authorization": f"Bearer {token}"}
    attempt = 0
    while True:
        try:
            async with websockets.connect(url, additional_headers=headers, open_timeout=10) as ws:
                log(f"connected to {url}; resuming after {state.cursor}")
                await ws.send(json.dumps({"type": "sync", "after": state.cursor}))
                async for raw in ws:
                    frame = json.loads(raw)
                    kind = frame.get("type")
                    if kind == "inform" and state.is_new(frame["id"]):
                        print(render(frame, fmt), file=out, flush=True)
                        state.printed(frame["id"])
                    elif kind == "synced":
                        state.synced(frame["cursor"])
                        attempt = 0
                    elif kind == "reset":
                        log("the server cannot resume from our cursor; following from its newest")
                        state.reset(frame["cursor"])
                    elif kind == "error":
                        log(f"server error {frame.get('code')}: {frame.get('detail')}")
            code = ws.close_code
        except websockets.InvalidStatus as exc:
            if exc.response.status_code in (401, 403):
                log("the server refused the token (revoked or unknown)")
                return TOKEN_REFUSED
            code = None
            log(f"handshake failed: HTTP {exc.response.status_code}")
        except websockets.ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
        except (TimeoutError, OSError, websockets.WebSocketException) as exc:
            code = None
            log(f"cannot connect: {exc or type(exc).__name__}")
        if code == CLOSE_FORBIDDEN:
            log("the server closed the socket as forbidden; stopping")
            return TOKEN_REFUSED
        delay = retry_delay(attempt, max_delay)
        attempt += 1
        log(f"retrying in {delay:.1f} s" + (f" (the server closed with {code})" if code else ""))
        await asyncio.sleep(delay)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the site (default %(default)s)")
    parser.add_argument("--state", type=Path, default=Path("mblog_tail.json"),
                        help="where the resume point is kept (default %(default)s)")
    parser.add_argument("--token-file", type=Path, help="read the token from this file instead of $MBLOG_TOKEN")
    parser.add_argument("--format", choices=("json", "text"), default="json")
    parser.add_argument("--max-delay", type=float, default=30.0, help="longest wait between retries, seconds")
    args = parser.parse_args(argv)
    token = args.token_file.read_text().strip() if args.token_file else os.environ.get("MBLOG_TOKEN", "")
    if not token:
        parser.error("set MBLOG_TOKEN or pass --token-file (make a token at /settings/tokens/)")
    try:
        return asyncio.run(tail(args.url, token, State(args.state), fmt=args.format, max_delay=args.max_delay))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
