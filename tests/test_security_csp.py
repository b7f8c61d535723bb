"""Issue 10 item 8: a Content-Security-Policy is sent, and the site works under it in
real Chromium (no violation on any page; live features still connect)."""

import pytest
from django.test import Client
from playwright.sync_api import expect

from chat.models import Room
from inform.services import send_inform
from mblog.models import Post

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_page_sends_a_policy_without_inline_script(make_user):
    alice = make_user("alice")
    c = Client()
    c.force_login(alice)
    for path in ("/", "/inform/", "/chat/", "/accounts/login/", "/u/alice/", "/healthz"):
        policy = c.get(path)["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy
        assert "frame-ancestors 'none'" in policy and "connect-src 'self' ws://testserver" in policy
    secure = c.get("/", secure=True)["Content-Security-Policy"]
    assert "wss://testserver" in secure


@pytest.mark.browser
def test_the_site_works_under_its_policy(browser, live_url, login, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    Room.objects.get_or_create(name="lobby")
    post = Post.objects.create(author=bob, title="hello", body="hi @alice")
    ctx = browser.new_context()
    login(ctx, alice)
    violations = []
    try:
        page = ctx.new_page()
        page.on("console", lambda m: "Content Security Policy" in m.text and violations.append(m.text))
        for path in ("/", "/inform/", f"/posts/{post.pk}/", "/u/bob/", "/chat/", "/admin/login/"):
            r = page.goto(live_url + path)
            assert "script-src 'self'" in r.headers["content-security-policy"]
        page.goto(live_url + "/")
        expect(page.locator("#live-status")).to_have_text("live")
        send_inform(to=alice, verb="mention", text="under the policy")
        expect(page.locator("#toasts")).to_contain_text("under the policy")
        page.goto(live_url + "/chat/lobby/")
        expect(page.locator("#chat-status")).to_have_text("live")
        assert violations == []
        # Injected inline script does not run.
        page.evaluate("""() => { const s = document.createElement('script'); s.textContent = 'window.ran = 1';
                                 document.body.append(s); }""")
        assert page.evaluate("window.ran") is None
        assert violations, "the injected script was not reported as blocked"
    finally:
        ctx.close()
