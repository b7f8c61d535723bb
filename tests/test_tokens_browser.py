"""The access-token page in real Chromium on a 375 px phone with JavaScript off: made
from the profile, shown once, used against the live API, revoked with a plain form."""

import json
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 375, "height": 740}


def api_status(live_url: str, token: str) -> tuple[int, dict]:
    request = urllib.request.Request(live_url + "/inform/api/unread/", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_token_made_shown_once_used_and_revoked_without_javascript(browser, live_url, login, make_user):
    alice = make_user("alice")
    context = browser.new_context(viewport=PHONE, java_script_enabled=False)
    try:
        login(context, alice)
        page = context.new_page()
        page.goto(live_url + "/u/alice/")
        page.click("#token-settings-link")
        page.fill("#token-name", "phone bot")
        page.check("input[name=scope][value=read]")
        page.click("#new-token-form button[type=submit]")
        token = page.locator("#new-token").inner_text().strip()
        assert token.startswith("mbt_")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        status, body = api_status(live_url, token)
        assert (status, body["unread"]) == (200, 0)

        page.goto(live_url + "/settings/tokens/")
        expect(page.locator("#new-token")).to_have_count(0)
        row = page.locator("#token-list .token", has_text="phone bot")
        expect(row).to_contain_text("Read only")
        expect(row).to_contain_text("last used")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        row.locator("button", has_text="Revoke").click()
        expect(page.locator(".messages")).to_contain_text("Token revoked")
        expect(page.locator("#token-list .token")).to_have_count(0)
        assert api_status(live_url, token)[0] == 401
    finally:
        context.close()
