"""Issue 13 in real headless Chromium: seen vs read across two tabs (badge, menu, list),
and preferences set without JavaScript, from the settings page and from a notification."""

import re

import pytest
from playwright.sync_api import expect

from inform.models import InformState, Notification, PersonMute
from inform.services import send_inform
from tests.conftest import ARTIFACTS, open_page

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_opening_the_menu_clears_the_badge_in_every_tab_and_items_stay_unread(browser, live_url, login, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    ctx = browser.new_context()
    login(ctx, alice)
    try:
        tab1 = open_page(ctx, live_url + "/")
        tab2 = open_page(ctx, live_url + "/u/bob/")
        send_inform(to=alice, verb="follow", actor=bob, text="bob followed you", url="/u/bob/")
        send_inform(to=alice, verb="mention", actor=bob, text="bob mentioned you", url="/u/bob/")
        for tab in (tab1, tab2):
            expect(tab.locator("#inform-new")).to_have_text("2")
            expect(tab.locator("#inform-badge")).to_have_text("2")
            expect(tab).to_have_title(re.compile(r"^\(2\) "))

        tab1.click("#inform-menu-button")
        expect(tab1.locator("#inform-menu .menu-item.unread")).to_have_count(2)
        # Seen, not read: "new" clears in both tabs; the badge still counts them unread.
        for tab in (tab1, tab2):
            expect(tab.locator("#inform-new")).to_be_hidden()
            expect(tab.locator("#inform-badge")).to_have_text("2")
            expect(tab).to_have_title(re.compile(r"^[^(]"))
        assert tab2.evaluate("[window.mblogInform.unread, window.mblogInform.unseen]") == [2, 0]
        expect(tab1.locator("#inform-menu .menu-item .stop-link")).to_have_count(2)
        tab1.screenshot(path=str(ARTIFACTS / "browser-seen-menu.png"))

        # Something new after that is new again, on top of what is still unread.
        send_inform(to=alice, verb="follow", text="carol followed you")
        expect(tab2.locator("#inform-new")).to_have_text("1")
        tab2.goto(live_url + "/inform/")  # opening the list sees it
        expect(tab2.locator("#inform-list .inform-item.unread")).to_have_count(3)
        expect(tab2.locator("#inform-new")).to_be_hidden()
        expect(tab1.locator("#inform-new")).to_be_hidden()
    finally:
        ctx.close()


def test_preferences_without_javascript_from_settings_and_from_a_notification(browser, live_url, login, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    send_inform(to=alice, verb="mention", actor=bob, text="bob mentioned you", url="/u/bob/")
    ctx = browser.new_context(java_script_enabled=False)
    login(ctx, alice)
    try:
        page = ctx.new_page()
        page.goto(live_url + "/inform/settings/")
        page.check("#pref-follow-off")
        page.check("#pref-reply-email")
        page.click("#preferences-save")
        expect(page.locator(".messages")).to_contain_text("Notification settings saved.")
        expect(page.locator("#pref-follow-off")).to_be_checked()
        state = InformState.objects.get(user=alice)
        assert (state.follow, state.reply) == ("off", "email")

        # "Stop notifying me about this" from the notification itself.
        page.goto(live_url + "/inform/")
        page.click("#inform-list .stop-link")
        expect(page.locator("h1")).to_have_text("Stop notifying me about this")
        page.click("#stop-person")
        expect(page.locator(".messages")).to_contain_text("Muted bob.")
        assert PersonMute.objects.filter(user=alice, muted=bob).exists()
        send_inform(to=alice, verb="mention", actor=bob, text="bob again")
        assert not Notification.objects.filter(recipient=alice, text="bob again").exists()
    finally:
        ctx.close()


def test_a_group_updates_in_place_live_in_two_tabs(browser, live_url, login, make_user):
    from mblog import services as blog

    alice, bob, carol, dave = (make_user(n) for n in ("alice", "bob", "carol", "dave"))
    post = blog.post_create(author=alice, title="Two pointers", body="b")
    ctx = browser.new_context()
    login(ctx, alice)
    try:
        listing = open_page(ctx, live_url + "/inform/")
        home = open_page(ctx, live_url + "/")
        home.click("#inform-menu-button")
        expect(home.locator("#inform-menu .empty")).to_be_visible()

        blog.reply_create(author=bob, post=post, body="first")
        expect(listing.locator("#inform-list .inform-item")).to_have_text(
            [re.compile("bob replied to “Two pointers”: first")]
        )
        for who in (carol, dave):
            blog.reply_create(author=who, post=post, body="more")
        # One entry, in its latest state, in the list and in the open menu of the other tab.
        for items in (listing.locator("#inform-list .inform-item"), home.locator("#inform-menu .menu-item")):
            expect(items).to_have_count(1)
            expect(items).to_contain_text("dave, carol and 1 more replied to “Two pointers”")
        for tab in (listing, home):
            expect(tab.locator("#inform-badge")).to_have_attribute("data-unread", "1")
        listing.screenshot(path=str(ARTIFACTS / "browser-group-in-place.png"))

        # A reload shows the same single entry.
        listing.reload()
        expect(listing.locator("#inform-list .inform-item")).to_have_count(1)
        expect(listing.locator("#inform-list .inform-item")).to_contain_text("dave, carol and 1 more")
    finally:
        ctx.close()


def test_a_follow_group_updates_in_place_live_in_two_tabs(browser, live_url, login, make_user):
    from mblog import services as blog

    alice, bob, carol, dave = (make_user(n) for n in ("alice", "bob", "carol", "dave"))
    ctx, bob_ctx = browser.new_context(), browser.new_context()
    login(ctx, alice)
    login(bob_ctx, bob)
    try:
        listing = open_page(ctx, live_url + "/inform/")
        home = open_page(ctx, live_url + "/")
        home.click("#inform-menu-button")
        expect(home.locator("#inform-menu .empty")).to_be_visible()

        bob_page = open_page(bob_ctx, f"{live_url}/u/alice/")  # a person following, with the button
        bob_page.click("#follow-button")
        expect(listing.locator("#inform-list .inform-item")).to_have_text([re.compile("bob followed you")])
        for who in (carol, dave):
            blog.follow_toggle(follower=who, followed=alice)
        for items in (listing.locator("#inform-list .inform-item"), home.locator("#inform-menu .menu-item")):
            expect(items).to_have_count(1)
            expect(items).to_contain_text("dave, carol and 1 more followed you")
        for tab in (listing, home):
            expect(tab.locator("#inform-badge")).to_have_attribute("data-unread", "1")
        listing.screenshot(path=str(ARTIFACTS / "browser-follow-group-in-place.png"))

        # A reload shows the same single entry; reading it reads the whole group, in both tabs.
        listing.reload()
        expect(listing.locator("#inform-list .inform-item")).to_have_count(1)
        listing.click("#inform-list .inform-item .mark-read")
        for tab in (listing, home):
            expect(tab.locator("#inform-badge")).to_be_hidden()
        expect(listing.locator("#inform-list .inform-item.read")).to_contain_text("dave, carol and 1 more")
        assert Notification.objects.get(recipient=alice).read_at is not None
    finally:
        ctx.close()
        bob_ctx.close()
