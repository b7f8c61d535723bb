"""Web Push (issue 14.3), server side: subscriptions from the settings page's script,
pushes encrypted and VAPID-signed by pywebpush, sent to a real local push service
(the npm package web-push-testing, started by the test) that checks the signature and
decrypts the payload; expired subscriptions (410) are removed."""

import json
import shutil
import subprocess
import time
import urllib.request
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from away import services, webpush
from away.models import AwayProfile, Presence, PushSubscription
from inform.services import send_inform
from tests.conftest import stop_process

from .conftest import ROOT, free_port

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

PACKAGE = ROOT / "tests" / "webpush"
SERVER = PACKAGE / "node_modules" / "web-push-testing" / "src" / "bin" / "server.js"


def call(url: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body or {}).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            text = r.read()
            try:
                return r.status, json.loads(text)
            except ValueError:  # /status answers "OK"
                return r.status, {}
    except urllib.error.HTTPError as exc:
        return exc.code, {}


class PushService:
    def __init__(self) -> None:
        if not SERVER.exists():
            npm = shutil.which("npm")
            assert npm, "npm is missing (apt-get install npm)"
            subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--prefix", str(PACKAGE)], check=True, timeout=300,
                           capture_output=True)
        self.port = free_port()
        self.url = f"http://localhost:{self.port}"
        self.proc = subprocess.Popen(["node", str(SERVER), str(self.port)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                if call(self.url + "/status")[0] == 200:
                    break
            except OSError:
                pass
            assert self.proc.poll() is None and time.monotonic() < deadline, "web-push-testing did not start"
            time.sleep(0.1)

    def subscribe(self, public_key: str) -> dict:
        """What a browser's pushManager.subscribe() would give (plus the service's clientHash)."""
        status, body = call(self.url + "/subscribe", {"applicationServerKey": public_key, "userVisibleOnly": "true"})
        assert status == 200, body
        return body["data"]

    def received(self, client_hash: str) -> list[dict]:
        status, body = call(self.url + "/get-notifications", {"clientHash": client_hash})
        assert status == 200, body
        return [json.loads(m) for m in body["data"]["messages"]]

    def expire(self, client_hash: str) -> None:
        assert call(self.url + f"/expire-subscription/{client_hash}")[0] == 200

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture(scope="module")
def push_service():
    service = PushService()
    yield service
    service.stop()


@pytest.fixture
def vapid(settings):
    settings.VAPID_PUBLIC_KEY, settings.VAPID_PRIVATE_KEY = webpush.generate_vapid_keys()
    settings.VAPID_SUBJECT = "mailto:admin@mblog.example.com"
    settings.AWAY_PUSH_INSECURE_HOSTS = ["localhost"]
    settings.INFORM_EMAIL_SITE_URL = "https://mblog.example.com"
    return settings.VAPID_PUBLIC_KEY


def subscribe(client, push_service, public_key) -> str:
    data = push_service.subscribe(public_key)
    browser_json = {"endpoint": data["endpoint"], "keys": data["keys"]}
    answer = client.post("/away/push/subscribe/", browser_json, content_type="application/json")
    assert answer.status_code == 201
    return data["clientHash"]


def test_a_notification_is_pushed_signed_and_encrypted_to_a_subscribed_browser(
        push_service, vapid, as_alice, alice, bob, settings):
    settings.AWAY_PUSH_DELAY = 0
    client_hash = subscribe(as_alice, push_service, vapid)
    (n,) = send_inform(to=alice, verb="reply", text="bob replied to Hello", actor=bob, url="/posts/1/")
    call_command("send_due_emails")
    (message,) = push_service.received(client_hash)  # it verified the VAPID JWT and decrypted this
    assert message == {"title": "mblog", "body": "bob replied to Hello", "tag": f"inform-{n.id}", "id": n.id,
                       "url": f"https://mblog.example.com/inform/{n.id}/open/"}
    call_command("send_due_emails")
    assert len(push_service.received(client_hash)) == 1  # nothing twice


def test_no_push_while_looking_or_in_quiet_hours(push_service, vapid, as_alice, alice, bob, settings):
    settings.AWAY_PUSH_DELAY = 0
    client_hash = subscribe(as_alice, push_service, vapid)
    Presence.objects.create(conn="tab", user=alice, visible=True, seen=timezone.now())
    send_inform(to=alice, verb="reply", text="seen in the tab", actor=bob)
    call_command("send_due_emails")
    assert push_service.received(client_hash) == []
    Presence.objects.all().delete()
    local = timezone.now()
    AwayProfile.objects.filter(user=alice).update(
        time_zone="UTC", quiet_start=(local - timedelta(hours=1)).time(), quiet_end=(local + timedelta(hours=1)).time())
    send_inform(to=alice, verb="mention", text="said at night", actor=bob)
    assert services.send_due_emails().quiet == [alice.pk]
    assert push_service.received(client_hash) == []
    AwayProfile.objects.filter(user=alice).update(quiet_start=None, quiet_end=None)
    call_command("send_due_emails")
    assert [m["body"] for m in push_service.received(client_hash)] == ["said at night"]


def test_an_expired_subscription_is_removed(push_service, vapid, as_alice, alice, bob, settings):
    settings.AWAY_PUSH_DELAY = 0
    client_hash = subscribe(as_alice, push_service, vapid)
    push_service.expire(client_hash)  # the service now answers 410 Gone
    send_inform(to=alice, verb="follow", text="bob followed you", actor=bob)
    call_command("send_due_emails")
    assert not PushSubscription.objects.filter(user=alice).exists()


def test_subscriptions_are_checked(vapid, as_alice, client):
    good_keys = {"p256dh": "BNc", "auth": "abc"}
    for endpoint in ["http://10.0.0.1/internal", "file:///etc/passwd", "", "https://"]:
        answer = as_alice.post("/away/push/subscribe/", {"endpoint": endpoint, "keys": good_keys},
                               content_type="application/json")
        assert answer.status_code == 400, endpoint
    assert as_alice.post("/away/push/subscribe/", "not json", content_type="application/json").status_code == 400
    anonymous = client.post("/away/push/subscribe/", {"endpoint": "https://push.example/x", "keys": good_keys},
                            content_type="application/json")
    assert anonymous.status_code == 302  # to the sign-in page
    assert not PushSubscription.objects.exists()


def test_generate_vapid_keys_prints_a_usable_pair(capsys):
    from py_vapid import Vapid

    call_command("generate_vapid_keys")
    lines = dict(line.split("=", 1) for line in capsys.readouterr().out.split())
    public = Vapid.from_string(lines["VAPID_PRIVATE_KEY"]).public_key
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    import base64

    assert base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == lines["VAPID_PUBLIC_KEY"]


def test_the_push_service_refuses_a_push_signed_with_another_key(push_service, vapid, as_alice, alice, bob, settings):
    """The local service really checks the VAPID signature (so the tests above prove ours)."""
    settings.AWAY_PUSH_DELAY = 0
    client_hash = subscribe(as_alice, push_service, vapid)
    settings.VAPID_PUBLIC_KEY, settings.VAPID_PRIVATE_KEY = webpush.generate_vapid_keys()
    send_inform(to=alice, verb="reply", text="signed by a stranger", actor=bob)
    outcome = services.send_due_emails()
    assert outcome.pushed == [] and push_service.received(client_hash) == []
    assert PushSubscription.objects.filter(user=alice).exists()  # refused, not gone


def test_the_service_worker_is_served_from_the_root_and_the_opt_in_appears(vapid, as_alice, client):
    sw = client.get("/sw.js")
    assert sw.status_code == 200 and sw["Content-Type"] == "application/javascript"
    assert sw["Service-Worker-Allowed"] == "/" and "script-src 'self'" in sw["Content-Security-Policy"]
    assert b'addEventListener("push"' in sw.content
    page = as_alice.get("/away/settings/").content.decode()
    assert f'data-key="{vapid}"' in page and "away/push.js" in page


def test_no_opt_in_without_vapid_keys(as_alice, settings):
    settings.VAPID_PUBLIC_KEY = settings.VAPID_PRIVATE_KEY = ""
    assert b"push-optin" not in as_alice.get("/away/settings/").content
