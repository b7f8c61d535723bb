"""daphne restarts under an open page: the page reconnects by itself, asks for what it
missed, and shows each notification once."""

import os

import pytest
from playwright.sync_api import expect

from inform.services import send_inform
from tests.conftest import Daphne, live_database_url

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_page_reconnects_after_a_server_restart_and_loses_nothing(browser, make_user):
    alice = make_user("alice")
    server = Daphne({**os.environ, "DATABASE_URL": live_database_url()}, name="restart").start()
    ctx = browser.new_context()
    try:
        from tests.conftest import session_cookie_for

        name, value = session_cookie_for(alice).split("=", 1)
        ctx.add_cookies([{"name": name, "value": value, "url": server.url}])
        page = ctx.new_page()
        sockets = []
        page.on("websocket", lambda ws: sockets.append(ws))
        page.goto(server.url + "/inform/")
        status = page.locator("#live-status")
        expect(status).to_have_text("live")

        server.stop()
        expect(status).to_have_text("offline")
        send_inform(to=alice, verb="mention", text="sent while the server was down")
        server.start()

        expect(status).to_have_text("live", timeout=20_000)
        items = page.locator("#inform-list .inform-item")
        expect(items).to_have_count(1)
        expect(items.first).to_contain_text("sent while the server was down")
        expect(page.locator("#inform-badge")).to_have_text("1")

        send_inform(to=alice, verb="mention", text="sent live")
        expect(items).to_have_count(2)
        expect(items.first).to_contain_text("sent live")  # newest first
        expect(page.locator("#inform-badge")).to_have_text("2")
        # A replay shows nothing twice: ask for everything again and wait for the answer's end.
        with sockets[-1].expect_event("framereceived", predicate=lambda payload: '"synced"' in str(payload)):
            page.evaluate("window.mblogInform.send({type: 'sync', after: 0})")
        expect(items).to_have_count(2)
        expect(page.locator("#inform-badge")).to_have_text("2")
    finally:
        ctx.close()
        server.stop()


def test_home_feed_backfills_what_it_missed_while_reconnecting(browser, make_user):
    from mblog import services as blog

    alice = make_user("alice")
    blog.post_create(author=alice, title="before the outage", body="x")
    server = Daphne({**os.environ, "DATABASE_URL": live_database_url()}, name="feed-restart").start()
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.goto(server.url + "/")
        status = page.locator("#live-status")
        expect(status).to_have_text("live")
        items = page.locator("#feed .feed-item")
        expect(items).to_have_count(1)

        server.stop()
        expect(status).to_have_text("offline")
        blog.post_create(author=alice, title="posted while the page was offline", body="x")
        server.start()

        # The page's backoff while the server was down can reach its 30 s ceiling.
        expect(status).to_have_text("live", timeout=45_000)
        expect(items).to_have_count(2)
        expect(items.first).to_contain_text("posted while the page was offline")
        blog.post_create(author=alice, title="posted live", body="x")
        expect(items).to_have_count(3)
        expect(items.first).to_contain_text("posted live")
        assert page.locator("#feed .feed-item", has_text="posted while the page was offline").count() == 1
    finally:
        ctx.close()
        server.stop()
