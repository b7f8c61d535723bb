"""Prometheus metrics (realtime.metrics): /metrics only for allowed addresses, and the
figures move as sockets open, pushes arrive and clients misbehave."""

import asyncio
import time

import pytest
from channels.db import database_sync_to_async as db
from django.test import Client
from prometheus_client import REGISTRY

from inform.services import send_inform
from realtime.consumer import ABUSE_LIMIT, CLOSE_ABUSE

pytestmark = [pytest.mark.django_db(transaction=True)]


def value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_are_served_only_to_allowed_addresses(settings):
    assert Client(REMOTE_ADDR="203.0.113.9").get("/metrics").status_code == 404
    r = Client(REMOTE_ADDR="127.0.0.1").get("/metrics")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/plain")
    text = r.content.decode()
    for name in ("realtime_open_sockets", "realtime_deliveries_total", "realtime_push_lag_seconds_bucket",
                 "realtime_layer_heals_total", "realtime_server_closes_total"):
        assert name in text
    settings.METRICS_ALLOWED_NETWORKS = ["10.1.0.0/16"]
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 404
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="not an address").get("/metrics").status_code == 404


async def until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the figure did not move"
        await asyncio.sleep(0.02)


@pytest.mark.asyncio
async def test_the_figures_move(sockets, make_user):
    alice = await db(make_user)("alice")
    signed_in, anonymous = value("realtime_open_sockets", user="signed_in"), value("realtime_open_sockets", user="anonymous")
    deliveries, lags = value("realtime_deliveries_total"), value("realtime_push_lag_seconds_count")
    abuse = value("realtime_server_closes_total", reason="abuse")
    rejected = {code: value("realtime_rejected_frames_total", code=code) for code in ("bad_request", "rate_limited")}

    tab = await sockets.open(user=alice)
    guest = await sockets.open()
    assert value("realtime_open_sockets", user="signed_in") == signed_in + 1
    assert value("realtime_open_sockets", user="anonymous") == anonymous + 1

    await db(send_inform)(to=alice, verb="mention", text="hi")
    assert (await tab.recv_until("inform"))["text"] == "hi"
    await until(lambda: value("realtime_push_lag_seconds_count") == lags + 1)
    assert value("realtime_deliveries_total") >= deliveries + 1
    assert value("realtime_push_lag_seconds_sum") < 60  # commit to write, in seconds

    for _ in range(ABUSE_LIMIT + 1):
        await guest.send("not json")
    await until(lambda: value("realtime_server_closes_total", reason="abuse") == abuse + 1)
    # a burst of bad frames: the first are bad requests, then the rate limit answers
    grew = {code: value("realtime_rejected_frames_total", code=code) - n for code, n in rejected.items()}
    assert grew["bad_request"] > 0 and grew["rate_limited"] > 0 and sum(grew.values()) == ABUSE_LIMIT + 1
    output = await guest.comm.receive_output(3)
    while output["type"] != "websocket.close":
        output = await guest.comm.receive_output(3)
    assert output["code"] == CLOSE_ABUSE

    await tab.close()
    await until(lambda: value("realtime_open_sockets", user="signed_in") == signed_in)


def scrape(url: str) -> dict[str, float]:
    """One daphne's /metrics: {'name{labels}': value}."""
    import urllib.request

    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


@pytest.mark.slow
def test_a_dropped_reader_and_a_layer_heal_show_in_a_daphnes_metrics(make_user):
    """Under a real daphne: a socket that stops reading is dropped for its backlog, and a
    Redis restart is healed; both counters move, and the live socket is counted."""
    from tests.conftest import Daphne, live_database_url, session_cookie_for
    from tests.faults import PrivateRedis, Pusher, RawStalledSocket, Tab, wait_until

    redis = PrivateRedis().start()
    reader, stalled_user = make_user("reader"), make_user("stalled")
    env = {**__import__("os").environ, "DATABASE_URL": live_database_url(), "REDIS_URL": redis.url,
           "INFORM_HUB_PROBE_INTERVAL": "0.3", "WS_MAX_BACKLOG_BYTES": "65536"}
    server = Daphne(env, name="metrics", args=("--ping-interval", "600", "--ping-timeout", "600")).start()
    tab = Tab(server.url, session_cookie_for(reader), reconnect=False, name="reader")
    try:
        tab.start()
        assert tab.ready.wait(15)
        before = scrape(server.url)
        assert before['realtime_open_sockets{user="signed_in"}'] == 1
        stalled = RawStalledSocket(server.url, session_cookie_for(stalled_user))
        pusher = Pusher(env, "--everyone", "--count", "6000", "--text-size", "500", "--url-size", "500",
                        "--progress", "1000")
        pusher.wait(180)
        wait_until(lambda: scrape(server.url)['realtime_server_closes_total{reason="backlog"}'] >= 1, 30,
                   "a backlog close in the metrics")
        stalled.close()
        wait_until(lambda: scrape(server.url)["realtime_push_lag_seconds_count"]
                   >= before["realtime_push_lag_seconds_count"] + 6000, 30, "every update fanned out")
        assert scrape(server.url)["realtime_deliveries_total"] >= before["realtime_deliveries_total"] + 6000

        redis.kill()
        redis.start()
        wait_until(lambda: scrape(server.url)["realtime_layer_heals_total"] >= before["realtime_layer_heals_total"] + 1,
                   30, "a layer heal in the metrics")
    finally:
        tab.stopping.set()
        tab.join(10)
        server.stop()
        redis.cleanup()
