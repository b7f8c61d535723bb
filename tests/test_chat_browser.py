"""Two people chatting in real headless Chromium against a real daphne and Redis."""

import pytest
from playwright.sync_api import expect

from chat.models import Room
from tests.conftest import ARTIFACTS, sockets_down, sockets_up

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def lobby(transactional_db):
    """The room a migration makes on a real site (a transactional test starts without it)."""
    return Room.objects.get_or_create(name="lobby")[0]


def open_room(context, url):
    page = context.new_page()
    page.goto(url)
    expect(page.locator("#chat-status")).to_have_text("live")
    return page


def say(page, text):
    page.fill("#chat-input", text)
    page.click("#chat-send")


def test_two_people_chat_live_and_markup_stays_inert(browser, live_url, login, make_user):
    from chat.models import Message

    alice, bob = make_user("alice"), make_user("bob")
    alice_ctx, bob_ctx = browser.new_context(), browser.new_context()
    login(alice_ctx, alice)
    login(bob_ctx, bob)
    try:
        a = open_room(alice_ctx, live_url + "/chat/lobby/")
        b = open_room(bob_ctx, live_url + "/chat/lobby/")
        for page in (a, b):
            expect(page.locator("#chat-presence li")).to_have_text(["alice", "bob"])

        say(a, "hello @bob")
        say(b, "hi alice")
        for page in (a, b):
            expect(page.locator("#chat-log .chat-msg .chat-text")).to_have_text(["hello @bob", "hi alice"])
            expect(page.locator("#chat-log .chat-msg .chat-user")).to_have_text(["alice", "bob"])
        expect(a.locator("#chat-input")).to_have_value("")
        # The mention reached bob's notification badge.
        expect(b.locator("#inform-badge")).to_have_text("1")

        # Markup is shown as text and never runs.
        evil = ['<script>window.pwned = 1</script>', '<img src=x onerror="window.pwned = 2">']
        for text in evil:
            say(b, text)
        expect(a.locator("#chat-log .chat-text").nth(3)).to_have_text(evil[1])
        expect(a.locator("#chat-log .chat-text").nth(2)).to_have_text(evil[0])
        assert a.locator("#chat-log img, #chat-log script").count() == 0
        assert a.evaluate("window.pwned") is None
        a.screenshot(path=str(ARTIFACTS / "browser-chat.png"))

        # A reload shows the same messages once, from the server-rendered page.
        a.reload()
        expect(a.locator("#chat-status")).to_have_text("live")
        expect(a.locator("#chat-log .chat-msg")).to_have_count(4)
        assert a.locator("#chat-log img, #chat-log script").count() == 0
        assert a.evaluate("window.pwned") is None
        assert Message.objects.count() == 4

        # A network blip: alice misses three messages and gets each exactly once on reconnect.
        sockets_down(a)
        a.evaluate("window.mblogChat.socket.close()")
        expect(a.locator("#chat-status")).to_have_text("offline")
        alice_ctx.set_offline(True)
        for i in range(3):
            say(b, f"while you were away {i}")
        expect(b.locator("#chat-log .chat-msg")).to_have_count(7)
        a.wait_for_function("() => window.failedSockets > 0", timeout=15000)  # a reconnect attempt failed
        sockets_up(a)
        alice_ctx.set_offline(False)
        expect(a.locator("#chat-status")).to_have_text("live", timeout=15000)
        expect(a.locator("#chat-log .chat-msg")).to_have_count(7)
        expect(a.locator("#chat-log .chat-text").nth(6)).to_have_text("while you were away 2")
        say(a, "back")
        expect(b.locator("#chat-log .chat-text").nth(7)).to_have_text("back")

        # Closing alice's tab takes her out of bob's list.
        alice_ctx.close()
        expect(b.locator("#chat-presence li")).to_have_text(["bob"])
    finally:
        for ctx in (alice_ctx, bob_ctx):
            try:
                ctx.close()
            except Exception:
                pass


def test_anonymous_visitor_is_asked_to_sign_in(browser, live_url):
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.goto(live_url + "/chat/lobby/")
        expect(page.locator("#chat-signin")).to_contain_text("Sign in")
        assert page.locator("#chat-form").count() == 0
    finally:
        ctx.close()
