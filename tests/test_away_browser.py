"""The page reports presence by itself (static/inform/inform.js), through a real daphne
process: another process (this test) sees it in the shared table."""

import json
import time

import pytest

from away import presence

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def wait_until(condition, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_an_open_page_is_looking_until_it_is_hidden_and_closed(browser, live_url, login, make_user):
    alice = make_user("alice")
    context = browser.new_context()
    login(context, alice)
    page = context.new_page()
    page.goto(live_url + "/")
    assert wait_until(lambda: presence.is_looking(alice.pk))
    # The page learns it is hidden (another tab in front) and says so.
    page.evaluate("""() => {
        Object.defineProperty(document, "visibilityState", {value: "hidden", configurable: true});
        document.dispatchEvent(new Event("visibilitychange"));
    }""")
    assert wait_until(lambda: not presence.is_looking(alice.pk))
    assert presence.has_open_tab(alice.pk)
    context.close()
    assert wait_until(lambda: not presence.has_open_tab(alice.pk))


def registration_id(cdp, scope: str, timeout: float = 15.0) -> str:
    found = {}
    cdp.on("ServiceWorker.workerRegistrationUpdated",
           lambda e: found.update({r["scopeURL"]: r["registrationId"] for r in e["registrations"] if not r["isDeleted"]}))
    cdp.send("ServiceWorker.enable")
    deadline = time.monotonic() + timeout
    while scope not in found:
        assert time.monotonic() < deadline, f"no service worker registration for {scope}: {found}"
        cdp.send("Runtime.evaluate", {"expression": "1"})  # lets the session's events arrive
        time.sleep(0.05)
    return found[scope]


def test_the_service_worker_shows_a_push_and_a_click_opens_its_target(browser, live_url, login, make_user, settings):
    """The push a server sends (away.services.push_payload) delivered to /sw.js through the
    DevTools protocol, as a push service would: it shows a notification, and a click on it
    opens the notification's page (marked read on the way)."""
    from away.services import push_payload
    from inform.models import Notification
    from inform.services import send_inform

    alice, bob = make_user("alice"), make_user("bob")
    (n,) = send_inform(to=alice, verb="follow", text="bob followed you", actor=bob, url="/u/bob/")
    settings.INFORM_EMAIL_SITE_URL = live_url
    payload = push_payload([n])
    context = browser.new_context()
    context.grant_permissions(["notifications"], origin=live_url)
    login(context, alice)
    page = context.new_page()
    page.goto(live_url + "/inform/")
    scope = page.evaluate("""async () => {
        const reg = await navigator.serviceWorker.register("/sw.js", {scope: "/"});
        await navigator.serviceWorker.ready;
        return reg.scope;
    }""")
    assert scope == live_url + "/"
    cdp = context.new_cdp_session(page)
    cdp.send("ServiceWorker.deliverPushMessage", {
        "origin": live_url, "registrationId": registration_id(cdp, scope), "data": json.dumps(payload),
    })
    shown = page.wait_for_function("""async () => {
        const list = await (await navigator.serviceWorker.ready).getNotifications();
        return list.length && list.map((x) => ({title: x.title, body: x.body, tag: x.tag, url: x.data.url}));
    }""", polling=100, timeout=10000).json_value()
    assert shown == [{"title": "mblog", "body": "bob followed you", "tag": f"inform-{n.id}",
                      "url": f"{live_url}/inform/{n.id}/open/"}]
    # A click, as the browser dispatches it to the worker; the worker sends the open tab there.
    (worker,) = [w for w in context.service_workers if w.url == live_url + "/sw.js"]
    worker.evaluate("""async () => {
        const [n] = await self.registration.getNotifications();
        self.dispatchEvent(new NotificationEvent("notificationclick", {notification: n}));
    }""")
    page.wait_for_url(live_url + "/u/bob/", timeout=10000)
    assert wait_until(lambda: Notification.objects.get(pk=n.pk).read_at is not None)
    context.close()


@pytest.fixture
def vapid_site(django_db_setup):
    """A daphne of its own with VAPID keys (the shared live server has none)."""
    import os

    from away.webpush import generate_vapid_keys
    from tests.conftest import Daphne, live_database_url

    public, private = generate_vapid_keys()
    server = Daphne({**os.environ, "DATABASE_URL": live_database_url(), "VAPID_PUBLIC_KEY": public,
                     "VAPID_PRIVATE_KEY": private}, name="vapid").start()
    yield server.url
    server.stop()


def test_the_settings_page_offers_push_and_registers_the_worker(browser, vapid_site, make_user):
    from tests.conftest import session_cookie_for

    alice = make_user("alice")
    context = browser.new_context()
    context.grant_permissions(["notifications"], origin=vapid_site)
    name, value = session_cookie_for(alice).split("=", 1)
    context.add_cookies([{"name": name, "value": value, "url": vapid_site}])
    page = context.new_page()
    problems = []
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(vapid_site + "/away/settings/")
    button = page.locator("#push-optin button")
    button.wait_for(state="visible")
    assert button.inner_text() == "Turn on push notifications"
    button.click()
    # The worker registers with the whole site as its scope. (Subscribing needs the
    # browser vendor's push service, and Chromium refuses it in Playwright's incognito
    # contexts: the page says so and the button works again.)
    page.wait_for_function("""async () => {
        const reg = await navigator.serviceWorker.getRegistration("/");
        return reg && reg.active && reg.scope === location.origin + "/";
    }""", polling=100, timeout=10000)
    page.wait_for_function("""() => !document.querySelector("#push-optin button").disabled""", timeout=15000)
    assert page.locator("#push-optin .hint").inner_text().startswith("Could not change push notifications")
    assert not [p for p in problems if "Content Security Policy" in p]
    context.close()
