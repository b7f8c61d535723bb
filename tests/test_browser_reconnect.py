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
        page.evaluate("window.mblogInform.send({type: 'sync', after: 0})")  # a replay shows nothing twice
        page.wait_for_timeout(500)
        expect(items).to_have_count(2)
        expect(page.locator("#inform-badge")).to_have_text("2")
    finally:
        ctx.close()
        server.stop()
