"""clients/mblog_tail.py without a server: its state file and its retry delays."""

from clients.mblog_tail import State, render, retry_delay, socket_url


def test_state_remembers_the_cursor_and_the_ids_printed_above_it(tmp_path):
    path = tmp_path / "state.json"
    state = State(path)
    assert state.cursor == 0 and state.is_new(1)
    state.printed(5)  # a live frame: the cursor does not move
    assert not State(path).is_new(5) and State(path).is_new(4)
    state.synced(5)
    again = State(path)
    assert (again.cursor, again.seen) == (5, set()) and not again.is_new(3) and again.is_new(6)
    state.printed(9)
    state.reset(2)  # another database: start over from its cursor
    assert (State(path).cursor, State(path).seen) == (2, set())
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left behind


def test_retry_delays_grow_exponentially_with_full_jitter():
    for attempt in range(12):
        delays = [retry_delay(attempt, 30) for _ in range(200)]
        assert all(0 <= d <= min(30, 0.5 * 2**attempt) for d in delays)
        assert len(set(delays)) > 100  # jittered, not one fixed wait
    assert max(retry_delay(1000, 30) for _ in range(200)) <= 30


def test_urls_and_lines():
    assert socket_url("http://127.0.0.1:8000") == "ws://127.0.0.1:8000/ws/inform/"
    assert socket_url("https://mblog.example.com/") == "wss://mblog.example.com/ws/inform/"
    frame = {"type": "inform", "id": 7, "verb": "mention", "actor": None, "text": "hi", "url": "", "created": "t",
             "unread": 3}
    assert render(frame, "json") == '{"id": 7, "verb": "mention", "actor": null, "text": "hi", "url": "", "created": "t"}'
    assert render(frame, "text") == "t [mention] hi"
