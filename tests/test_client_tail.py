"""clients/mblog_tail.py against a real daphne: it prints each notification exactly once
through a server restart (the connection drops, pushes made meanwhile are only stored),
a restart of the client itself (resume from its state file), and stops when its token
is revoked."""

import json
import os
import subprocess
import sys
import threading

import pytest

from inform.services import send_inform
from tests.conftest import ROOT, Daphne, live_database_url, stop_process, wait_until
from tokens.services import token_create, token_revoke

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class Tail:
    """The client as a user runs it, its stdout collected line by line."""

    def __init__(self, url: str, token: str, state, lines: list[str]):
        self.lines = lines
        self.proc = subprocess.Popen(
            [sys.executable, "clients/mblog_tail.py", "--url", url, "--state", str(state), "--max-delay", "1"],
            cwd=ROOT, env={**os.environ, "MBLOG_TOKEN": token}, stdout=subprocess.PIPE,
            stderr=open(state.parent / "tail.err", "ab"), text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def stop(self) -> None:
        stop_process(self.proc)
        self.reader.join(5)


def printed_ids(lines: list[str]) -> list[int]:
    return [json.loads(line)["id"] for line in list(lines)]


def test_tail_prints_each_notification_once_across_server_and_client_restarts(
    django_db_setup, make_user, tmp_path
):
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pytest.skip("needs PostgreSQL (run with bin/test)")
    alice, bob = make_user("alice"), make_user("bob")
    _, raw = token_create(user=alice, name="tail", scope="read")
    token_row = alice.access_tokens.get()

    def push(text: str) -> int:
        return send_inform(to=alice, verb="mention", actor=bob, text=text)[0].id

    server = Daphne({**os.environ, "DATABASE_URL": live_database_url()}, name="tail").start()
    lines: list[str] = []
    state = tmp_path / "state.json"
    expected = [push("before the client started")]
    tail = Tail(server.url, raw, state, lines)
    try:
        wait_until(lambda: printed_ids(lines) == expected, 20, "the catch-up")
        expected.append(push("live"))
        wait_until(lambda: printed_ids(lines) == expected, 20, "the live push")

        server.stop()  # the connection drops; these are stored, not pushed
        expected += [push("while the server was down"), push("also while down")]
        server.start()  # same port
        wait_until(lambda: printed_ids(lines) == expected, 20, "the resume after the server restart")
        expected.append(push("live again"))
        wait_until(lambda: printed_ids(lines) == expected, 20, "live pushes after the reconnect")

        tail.stop()
        expected.append(push("while the client was stopped"))
        tail = Tail(server.url, raw, state, lines)
        wait_until(lambda: printed_ids(lines) == expected, 20, "the resume from the state file")
        expected.append(push("last"))
        wait_until(lambda: printed_ids(lines) == expected, 20, "the last push")
        assert printed_ids(lines) == expected and len(set(expected)) == len(expected) == 7

        token_revoke(user=alice, token_id=token_row.pk)
        assert tail.proc.wait(20) == 2  # its socket closes, the handshake is refused: it stops
    finally:
        tail.stop()
        server.stop()
    assert printed_ids(lines) == expected


def test_tail_follows_a_server_that_cannot_resume_its_cursor(live_url, make_user, tmp_path):
    """A state file from another database (its cursor is beyond anything here): the
    server answers `reset`, the client takes its cursor and prints what comes next."""
    from clients.mblog_tail import State

    alice, bob = make_user("alice"), make_user("bob")
    _, raw = token_create(user=alice, name="tail", scope="read")
    send_inform(to=alice, verb="follow", actor=bob, text="older, not followed")
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"cursor": 10**12, "seen": [10**12 + 1]}))
    lines: list[str] = []
    tail = Tail(live_url, raw, state, lines)
    try:
        wait_until(lambda: State(state).cursor < 10**12, 20, "the reset")
        n = send_inform(to=alice, verb="mention", actor=bob, text="after the reset")[0]
        wait_until(lambda: printed_ids(lines) == [n.id], 20, "the push after the reset")
    finally:
        tail.stop()
    assert printed_ids(lines) == [n.id]
