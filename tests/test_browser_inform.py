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
