"""The page reports presence by itself (static/inform/inform.js), through a real daphne
process: another process (this test) sees it in the shared table."""

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
