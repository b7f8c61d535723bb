"""Issue 11 in real headless Chromium, at desktop width and at 375 px (a phone)."""

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import ARTIFACTS, open_page, sockets_down, sockets_up

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 375, "height": 740}


@pytest.fixture
def people(browser, live_url, login, make_user):
    """alice at desktop width and on a phone, and bob; contexts closed at teardown."""
    alice, bob = make_user("alice"), make_user("bob")
    made = []

    def context(user, **options):
        ctx = browser.new_context(**options)
        if user is not None:
            login(ctx, user)
        made.append(ctx)
        return ctx

    yield alice, bob, context
    for ctx in made:
        ctx.close()


def test_opening_a_notification_marks_it_read_everywhere_and_highlights_the_target(live_url, people):
    from mblog.services import post_create, reply_create

    alice, bob, context = people
    post = post_create(author=alice, title="Two pointers", body="...")
    desk, phone = context(alice), context(alice, viewport=PHONE)
    home = open_page(desk, live_url + "/")
    inbox = open_page(phone, live_url + "/inform/")

    first = reply_create(author=bob, post=post, body="nice picture")
    # A toast at desktop width: click it, land on the reply, highlighted.
    home.locator("#toasts .toast", has_text="nice picture").locator("a").click()
    expect(home).to_have_url(re.compile(rf"/posts/{post.pk}/#reply-{first.pk}$"))
    expect(home.locator(":target")).to_have_id(f"reply-{first.pk}")  # once the page has loaded
    expect(home.locator(f"#reply-{first.pk}")).to_have_css("box-shadow", re.compile(r"rgb\(255, 212, 138\)"))
    expect(home.locator("#inform-badge")).to_be_hidden()
    # The phone's list, open all along, shows it read without a reload.
    item = inbox.locator("#inform-list .inform-item", has_text="nice picture")
    expect(item).to_have_class(re.compile(r"\bread\b"))
    expect(inbox.locator("#inform-badge")).to_be_hidden()

    # From the list on the phone: the live item's link opens it the same way.
    second = reply_create(author=bob, post=post, body="and a second thought")
    expect(home.locator("#inform-badge")).to_have_text("1")
    inbox.locator("#inform-list a", has_text="and a second thought").click()
    expect(inbox).to_have_url(re.compile(rf"#reply-{second.pk}$"))
    expect(inbox.locator(":target")).to_have_id(f"reply-{second.pk}")
    expect(inbox.locator(f"#reply-{second.pk}")).to_be_in_viewport()
    expect(home.locator("#inform-badge")).to_be_hidden()
    inbox.screenshot(path=str(ARTIFACTS / "browser-landed-phone.png"))


def test_no_page_scrolls_sideways_on_a_phone(live_url, people):
    from chat.services import chat_message_post, room_get_or_create
    from inform.services import send_inform
    from mblog.services import post_create, reply_create

    alice, bob, context = people
    long_word = "https://example.com/" + "a-very-long-unbroken-path" * 6
    post = post_create(author=bob, title="A title " + "x" * 120, body=f"See {long_word} @alice")
    reply_create(author=alice, post=post, body=long_word)
    room = room_get_or_create(name="lobby", by=alice)
    chat_message_post(room=room, author=bob, text=long_word)
    send_inform(to=alice, verb="mention", actor=bob, text="bob mentioned you: " + long_word, url="/")
    phone = context(alice, viewport=PHONE)
    page = phone.new_page()
    paths = ["/", f"/posts/{post.pk}/", "/u/bob/", "/inform/", "/chat/", "/chat/lobby/", "/posts/new/"]
    wide = {}
    for path in paths:
        page.goto(live_url + path)
        expect(page.locator("#live-status")).to_have_text("live")
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            wide[path] = width
            page.screenshot(path=str(ARTIFACTS / f"phone-wide-{path.strip('/').replace('/', '-') or 'home'}.png"))
        if path == f"/posts/{post.pk}/":
            page.screenshot(path=str(ARTIFACTS / "phone-post.png"))
    page = context(None, viewport=PHONE).new_page()
    for path in ["/", "/accounts/login/", "/accounts/signup/", f"/posts/{post.pk}/", "/chat/lobby/"]:
        page.goto(live_url + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            wide["signed out " + path] = width
    assert wide == {}, f"pages wider than {PHONE['width']} px: {wide}"


def test_chat_history_and_live_messages_look_the_same_in_the_readers_time_zone(live_url, people):
    from zoneinfo import ZoneInfo

    from chat.services import chat_message_post, room_get_or_create

    alice, bob, context = people
    room = room_get_or_create(name="lobby", by=alice)
    old = [chat_message_post(room=room, author=a, text=t) for a, t in ((alice, "from history"), (bob, "me too"))]
    shape = """li => [li.className, li.getBoundingClientRect().height,
                     Array.from(li.children).map(c => c.tagName + '.' + c.className).join(' ')]"""

    # alice: desktop, en-US in New York. bob: a phone, de-DE in Berlin.
    readers = []
    for user, zone, fmt, options in (
        (alice, "America/New_York", "%I:%M %p", {"locale": "en-US"}),
        (bob, "Europe/Berlin", "%H:%M", {"locale": "de-DE", "viewport": PHONE}),
    ):
        page = context(user, timezone_id=zone, **options).new_page()
        page.goto(live_url + "/chat/lobby/")
        expect(page.locator("#chat-status")).to_have_text("live")
        readers.append((page, zone, fmt))
    readers[0][0].fill("#chat-input", "said live")
    readers[0][0].click("#chat-send")
    for page, zone, fmt in readers:
        msgs = page.locator("#chat-log .chat-msg")
        expect(msgs).to_have_count(3)
        for i, m in enumerate(old):
            expect(msgs.nth(i).locator("time")).to_have_text(m.created.astimezone(ZoneInfo(zone)).strftime(fmt))
        live_time = msgs.nth(2).locator("time").inner_text()
        assert re.fullmatch(r"\d\d:\d\d [AP]M" if fmt.endswith("%p") else r"\d\d:\d\d", live_time), live_time
        assert msgs.nth(0).evaluate(shape) == msgs.nth(2).evaluate(shape)  # same classes, parts, one line each
    # Own name highlighted, in history and live: alice's two for alice, bob's one for bob.
    expect(readers[0][0].locator("#chat-log .chat-msg.mine .chat-text")).to_have_text(["from history", "said live"])
    expect(readers[1][0].locator("#chat-log .chat-msg.mine .chat-text")).to_have_text(["me too"])
    readers[1][0].screenshot(path=str(ARTIFACTS / "browser-chat-phone-berlin.png"))


def test_live_items_are_marked_read_one_by_one_and_every_list_tab_follows(live_url, people):
    from inform.services import send_inform

    alice, bob, context = people
    desk = open_page(context(alice), live_url + "/inform/")
    phone = open_page(context(alice, viewport=PHONE), live_url + "/inform/")
    for i in range(3):
        send_inform(to=alice, verb="mention", actor=bob, text=f"live mention {i}", url="/")
    for tab in (desk, phone):
        expect(tab.locator("#inform-list .inform-item.unread")).to_have_count(3)
        expect(tab.locator("#inform-badge")).to_have_text("3")

    # One live item, marked read in one tab: read in both, the others stay unread.
    desk.locator(".inform-item", has_text="live mention 1").locator(".mark-read").click()
    for tab in (desk, phone):
        expect(tab.locator(".inform-item", has_text="live mention 1")).to_have_class(re.compile(r"\bread\b"))
        expect(tab.locator("#inform-list .inform-item.unread")).to_have_count(2)
        expect(tab.locator("#inform-badge")).to_have_text("2")

    # "Mark all read" on the phone: the desktop list follows, without a reload.
    phone.click("#mark-all-read")
    for tab in (desk, phone):
        expect(tab.locator("#inform-list .inform-item.unread")).to_have_count(0)
        expect(tab.locator("#inform-list .mark-read")).to_have_count(0)
        expect(tab.locator("#inform-badge")).to_be_hidden()
    desk.reload()
    expect(desk.locator("#inform-list .inform-item.read")).to_have_count(3)


# Headless Chromium keeps every page visible and shows no desktop notifications: this
# lets a test hide a page and records what the page asks the real Notification API for.
HIDEABLE = """
Object.defineProperty(Document.prototype, "visibilityState", {configurable: true,
  get() { return window.__hidden ? "hidden" : "visible"; }});
Object.defineProperty(Document.prototype, "hidden", {configurable: true, get() { return !!window.__hidden; }});
window.__shown = [];
const RealNotification = window.Notification;
window.Notification = function (title, options) {
  window.__shown.push(options.body);
  return new RealNotification(title, options);
};
Object.defineProperty(window.Notification, "permission", {get: () => RealNotification.permission});
window.Notification.requestPermission = (...a) => RealNotification.requestPermission(...a);
"""


def set_hidden(page, hidden):
    page.evaluate("h => { window.__hidden = h; document.dispatchEvent(new Event('visibilitychange')); }", hidden)


def test_unread_count_in_the_title_and_desktop_notifications_only_when_no_tab_is_visible(live_url, people):
    from inform.services import send_inform

    alice, bob, context = people
    ctx = context(alice)
    ctx.add_init_script(HIDEABLE)
    ctx.grant_permissions(["notifications"], origin=live_url)
    inbox = open_page(ctx, live_url + "/inform/")
    home = open_page(ctx, live_url + "/")
    expect(inbox).to_have_title("Notifications · mblog")

    send_inform(to=alice, verb="mention", actor=bob, text="first", url="/")
    expect(inbox).to_have_title("(1) Notifications · mblog")
    expect(home).to_have_title("(1) Activity · mblog")

    # Opt in, clearly, on the list page; nothing shown while a tab is in view.
    optin = inbox.locator("#desktop-optin")
    expect(optin).to_have_text("Turn on desktop notifications")
    optin.click()
    expect(optin).to_have_text("Turn off desktop notifications")
    expect(optin).to_have_attribute("aria-pressed", "true")
    set_hidden(home, True)
    send_inform(to=alice, verb="mention", actor=bob, text="while the list is in view", url="/")
    expect(home).to_have_title("(2) Activity · mblog")

    # Both tabs hidden: one desktop notification, from one of them.
    set_hidden(inbox, True)
    (n,) = send_inform(to=alice, verb="mention", actor=bob, text="nobody is looking", url="/")
    for tab in (inbox, home):
        expect(tab).to_have_title(re.compile(r"^\(3\) "))
    inbox.wait_for_function("id => localStorage.getItem('inform.desktop.last') === String(id)", arg=n.id)
    shown = inbox.evaluate("window.__shown") + home.evaluate("window.__shown")
    assert shown == ["nobody is looking"]

    # Turned off: nothing more, even with no tab in view.
    set_hidden(inbox, False)
    optin.click()
    expect(optin).to_have_text("Turn on desktop notifications")
    set_hidden(inbox, True)
    send_inform(to=alice, verb="mention", actor=bob, text="after opting out", url="/")
    expect(inbox).to_have_title(re.compile(r"^\(4\) "))
    assert inbox.evaluate("window.__shown") + home.evaluate("window.__shown") == ["nobody is looking"]

    inbox.evaluate("window.mblogInform.send({type: 'read_all'})")
    expect(inbox).to_have_title("Notifications · mblog")
    expect(home).to_have_title("Activity · mblog")


@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desktop", "phone"])
def test_header_menu_lists_unread_first_marks_read_and_works_from_the_keyboard(live_url, people, viewport):
    from inform.services import notifications_mark_read, send_inform

    alice, bob, context = people
    for text in ("older unread", "older read", "newest unread"):
        (n,) = send_inform(to=alice, verb="mention", actor=bob, text=text, url="/")
        if text == "older read":
            notifications_mark_read(alice, [n.id])
    ctx = context(alice, **({"viewport": viewport} if viewport else {}))
    page = open_page(ctx, live_url + "/chat/")
    other = open_page(ctx, live_url + "/inform/")
    button = page.locator("#inform-menu-button")
    menu = page.locator("#inform-menu")
    expect(menu).to_be_hidden()

    # Keyboard: focus the bell, Enter opens, focus lands on the first item.
    button.focus()
    page.keyboard.press("Enter")
    expect(menu).to_be_visible()
    expect(button).to_have_attribute("aria-expanded", "true")
    items = menu.locator(".menu-item")
    expect(items.locator(".menu-text")).to_have_text(["newest unread", "older unread", "older read"])
    expect(items.locator(".menu-open").first).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(items.locator(".menu-open").nth(1)).to_be_focused()
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    box = menu.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= page.viewport_size["width"]

    # Opening the menu saw everything (no longer "new"), which stays unread.
    for tab in (page, other):
        expect(tab.locator("#inform-new")).to_be_hidden()

    # Mark one read from the menu: the counters, the menu and the other tab's list follow.
    page.get_by_role("button", name="Mark read: older unread").click()
    expect(items.nth(1)).to_have_class(re.compile(r"\bread\b"))
    for tab in (page, other):
        expect(tab.locator("#inform-badge")).to_have_attribute("data-unread", "1")
    expect(other.locator(".inform-item", has_text="older unread")).to_have_class(re.compile(r"\bread\b"))

    # Live while open: a new one appears on top, unread, and "new".
    send_inform(to=alice, verb="follow", actor=bob, text="bob followed you", url="/u/bob/")
    expect(items.first).to_contain_text("bob followed you")
    expect(items.first).to_have_class(re.compile(r"\bunread\b"))
    for tab in (page, other):
        expect(tab.locator("#inform-new")).to_have_text("1")

    # Escape closes and gives focus back to the bell; clicking outside closes too.
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    expect(button).to_be_focused()
    expect(button).to_have_attribute("aria-expanded", "false")
    button.click()
    expect(menu).to_be_visible()
    page.mouse.click(5, page.viewport_size["height"] - 5)  # below the menu, phone or desktop
    expect(menu).to_be_hidden()

    # Mark all read, then "see all" goes to the list.
    button.click()
    page.locator("#inform-menu-read-all").click()
    for tab in (page, other):
        expect(tab.locator("#inform-badge")).to_be_hidden()
    expect(menu.locator(".menu-item.unread")).to_have_count(0)
    page.locator("#inform-menu-all").click()
    expect(page).to_have_url(live_url + "/inform/")


def test_toasts_show_who_fit_three_lines_and_close(live_url, people):
    from inform.services import send_inform

    alice, bob, context = people
    page = open_page(context(alice, viewport=PHONE), live_url + "/")
    send_inform(to=alice, verb="mention", actor=bob, text="bob mentioned you in “A post”: " + "many words " * 40,
                url="/")
    toast = page.locator("#toasts .toast")
    expect(toast).to_have_count(1)
    expect(toast.locator(".avatar")).to_have_text("B")
    line = float(toast.locator(".toast-link").evaluate("a => parseFloat(getComputedStyle(a).lineHeight)"))
    assert toast.locator(".toast-link").bounding_box()["height"] <= 3 * line + 1  # clamped, with an ellipsis
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    toast.get_by_role("button", name="Dismiss").click()
    expect(toast).to_have_count(0)
    send_inform(to=alice, verb="follow", actor=bob, text="bob followed you", url="/u/bob/")
    page.goto(live_url + "/inform/")
    expect(page.locator("#inform-list .inform-item").first.locator(".avatar")).to_have_text("B")


@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desktop", "phone"])
def test_chat_queues_messages_while_offline_and_sends_them_on_reconnect(live_url, people, viewport):
    from chat.models import Message
    from chat.services import room_get_or_create

    alice, bob, context = people
    room_get_or_create(name="lobby", by=alice)
    a_ctx = context(alice, **({"viewport": viewport} if viewport else {}))
    a = a_ctx.new_page()
    b = context(bob).new_page()
    for page in (a, b):
        page.goto(live_url + "/chat/lobby/")
        expect(page.locator("#chat-status")).to_have_text("live")
    expect(a.locator("#chat-presence li")).to_have_text(["alice", "bob"])
    banner = a.locator("#chat-offline")
    expect(banner).to_be_hidden()

    sockets_down(a)
    a.evaluate("window.mblogChat.socket.close()")
    expect(banner).to_be_visible()
    a_ctx.set_offline(True)
    expect(a.locator("#chat-presence")).to_have_class(re.compile(r"\bstale\b"))

    # Enter while offline: no failed page load, the message waits in the log.
    a.fill("#chat-input", "written offline")
    a.press("#chat-input", "Enter")
    waiting = a.locator("#chat-log .chat-msg.pending")
    expect(waiting).to_have_count(1)
    expect(waiting.locator(".chat-state")).to_have_text("waiting to send")
    expect(a.locator("#chat-input")).to_have_value("")
    assert a.url == live_url + "/chat/lobby/"
    assert Message.objects.count() == 0

    # Back online: it reconnects without waiting out the backoff, sends, and shows it once.
    sockets_up(a)
    a_ctx.set_offline(False)
    expect(a.locator("#chat-status")).to_have_text("live")
    expect(banner).to_be_hidden()
    expect(waiting).to_have_count(0)
    for page in (a, b):
        expect(page.locator("#chat-log .chat-msg .chat-text")).to_have_text(["written offline"])
    expect(a.locator("#chat-log .chat-msg.mine")).to_have_count(1)
    expect(a.locator("#chat-presence")).not_to_have_class(re.compile(r"\bstale\b"))
    assert Message.objects.count() == 1


def test_a_clear_banner_while_the_live_connection_is_down(live_url, people):
    alice, bob, context = people
    ctx = context(alice, viewport=PHONE)
    page = open_page(ctx, live_url + "/")
    banner = page.locator("#offline-banner")
    expect(banner).to_be_hidden()
    sockets_down(page)
    page.evaluate("window.mblogInform.socket.close()")
    expect(banner).to_be_visible()
    ctx.set_offline(True)
    expect(banner).to_contain_text("You're offline")
    expect(banner.get_by_role("button", name="Retry now")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    sockets_up(page)
    ctx.set_offline(False)  # the network is back: it reconnects at once, not after the backoff
    expect(page.locator("#live-status")).to_have_text("live")
    expect(banner).to_be_hidden()


def test_the_header_says_nothing_about_live_updates_without_javascript(live_url, people):
    alice, bob, context = people
    page = context(alice, java_script_enabled=False).new_page()
    page.goto(live_url + "/")
    expect(page.locator("#live-status")).to_be_hidden()
    expect(page.locator("#offline-banner")).to_be_hidden()


def test_signup_errors_are_styled_and_the_rate_limit_speaks_plainly(live_url, people):
    from chat.services import room_get_or_create

    alice, bob, context = people
    page = context(None, viewport=PHONE).new_page()
    page.goto(live_url + "/accounts/signup/")
    page.fill("#id_username", "newbie")
    page.fill("#id_password1", "a-Long-pass-9876")
    page.fill("#id_password2", "something else")
    page.click("main button[type=submit]")
    expect(page.locator(".errorlist").first).to_have_css("color", "rgb(207, 34, 46)")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    room_get_or_create(name="lobby", by=alice)
    chat = context(alice).new_page()
    chat.goto(live_url + "/chat/lobby/")
    expect(chat.locator("#chat-status")).to_have_text("live")
    chat.evaluate("""() => { for (let i = 0; i < 40; i++)
        window.mblogChat.socket.send(JSON.stringify({type: "message", text: "flood " + i})); }""")
    expect(chat.locator("#chat-error")).to_contain_text("faster than the room allows")
    assert "frames" not in chat.locator("#chat-error").inner_text()


def test_replies_appear_live_on_the_post_page_without_moving_what_the_reader_writes(live_url, people):
    from mblog.services import post_create, reply_create

    alice, bob, context = people
    post = post_create(author=alice, title="Two pointers", body="...")
    other = post_create(author=alice, title="Another post", body="...")
    reader = open_page(context(alice), f"{live_url}/posts/{post.pk}/")
    phone = open_page(context(bob, viewport=PHONE), f"{live_url}/posts/{post.pk}/")
    expect(reader.locator("#replies")).to_contain_text("No replies yet.")

    first = reply_create(author=bob, post=post, body="live @alice reply")
    reply_create(author=bob, post=other, body="elsewhere")  # another post's reply stays there
    for page in (reader, phone):
        expect(page.locator(f"#reply-{first.pk}")).to_contain_text("live @alice reply")
        expect(page.locator("#replies .reply")).to_have_count(1)
        expect(page.locator("#replies")).not_to_contain_text("No replies yet.")
    expect(reader.locator(f"#reply-{first.pk} a.mention")).to_have_attribute("href", "/u/alice/")

    # bob is writing on his phone: the next reply waits behind a button.
    phone.fill(".reply-form textarea", "half a thought")
    second = reply_create(author=alice, post=post, body="and a second one")
    expect(reader.locator(f"#reply-{second.pk}")).to_be_visible()
    waiting = phone.locator("#new-replies")
    expect(waiting).to_have_text("1 new reply — show")
    expect(phone.locator("#replies .reply")).to_have_count(1)
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    waiting.click()
    expect(phone.locator(f"#reply-{second.pk}")).to_be_in_viewport()
    expect(waiting).to_be_hidden()
    expect(phone.locator(".reply-form textarea")).to_have_value("half a thought")
