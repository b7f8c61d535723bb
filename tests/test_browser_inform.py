"""Two people in real headless Chromium: live badge, toast and cross-tab read state."""

import pytest
from playwright.sync_api import expect

from tests.conftest import ARTIFACTS, open_page

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_follow_reaches_the_other_persons_tabs_live(browser, live_url, login, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    alice_ctx, bob_ctx = browser.new_context(), browser.new_context()
    login(alice_ctx, alice)
    login(bob_ctx, bob)
    try:
        tab1 = open_page(alice_ctx, live_url + "/")
        tab2 = open_page(alice_ctx, live_url + "/inform/")
        expect(tab1.locator("#inform-badge")).to_be_hidden()

        bob_page = open_page(bob_ctx, f"{live_url}/u/alice/")
        bob_page.click("#follow-button")
        expect(bob_page.locator("#follow-button")).to_have_text("Unfollow")

        # Without a reload: badge, toast and list in both of alice's tabs.
        for tab in (tab1, tab2):
            expect(tab.locator("#inform-badge")).to_have_text("1")
        expect(tab1.locator("#toasts .toast")).to_contain_text("bob followed you")
        expect(tab2.locator("#inform-list .inform-item.unread")).to_contain_text("bob followed you")
        tab1.screenshot(path=str(ARTIFACTS / "browser-follow-toast.png"))

        # Reading in one tab clears the badge in the other.
        tab2.click("#mark-all-read")
        expect(tab2.locator("#inform-badge")).to_be_hidden()
        expect(tab1.locator("#inform-badge")).to_be_hidden()
        assert tab1.evaluate("window.mblogInform.unread") == 0

        # And it stays right after a reload, with JavaScript's help or without it.
        tab1.reload()
        expect(tab1.locator("#inform-badge")).to_be_hidden()
    finally:
        alice_ctx.close()
        bob_ctx.close()


def test_pages_work_without_javascript(browser, live_url, login, make_user):
    from inform.services import send_inform

    carol = make_user("carol")
    send_inform(to=carol, verb="mention", text="dave mentioned you")
    ctx = browser.new_context(java_script_enabled=False)
    login(ctx, carol)
    try:
        page = ctx.new_page()
        page.goto(live_url + "/")
        expect(page.locator("#inform-badge")).to_have_text("1")
        expect(page.locator("#inform-new")).to_have_text("1")
        page.goto(live_url + "/inform/")  # the list: seen (no longer new), still unread
        expect(page.locator("#inform-new")).to_be_hidden()
        expect(page.locator("#inform-badge")).to_have_text("1")
        expect(page.locator(".inform-item.unread")).to_contain_text("dave mentioned you")
        page.click(".mark-read")  # a plain form post
        expect(page.locator("#inform-badge")).to_be_hidden()
        expect(page.locator(".inform-item.read")).to_contain_text("dave mentioned you")
    finally:
        ctx.close()


@pytest.mark.parametrize("first", ["personal", "site_update"])
def test_counter_frames_delivered_in_reverse_order_leave_the_badge_right(browser, live_url, login, make_user,
                                                                         monkeypatch, first):
    """A notification's push is held back (a slow sender) while a read_all elsewhere
    commits and pushes its counters; the tab gets the read_all's frame first, then the
    notification's, whose counters (or, for a site update, "one more") are older: the
    badge must stay at the read_all's (tests/test_faults.py has the same with a
    protocol-level client)."""
    from inform.services import notifications_mark_all_read, send_inform
    from realtime import transport

    dana = make_user("dana")
    ctx = browser.new_context()
    login(ctx, dana)
    held = []
    try:
        page = open_page(ctx, live_url + "/")
        with monkeypatch.context() as m:
            m.setattr(transport, "_send_now", held.extend)
            if first == "personal":
                send_inform(to=dana, verb="mention", text="held back")
            else:
                send_inform(everyone=True, verb="site_update", text="held back")
            notifications_mark_all_read(dana)
        assert [body["frame"]["type"] for _, body in held] == ["inform", "unread"]
        for group, body in reversed(held):
            transport._send_now([(group, body)])
        expect(page.locator("#toasts .toast")).to_contain_text("held back")  # both frames are in
        expect(page.locator("#inform-badge")).to_be_hidden()
        assert page.evaluate("window.mblogInform.unread") == 0
    finally:
        ctx.close()
