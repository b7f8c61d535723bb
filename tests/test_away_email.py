"""Email that knows whether you are here (issue 14.2) and quiet hours (14.4), sent
through Django's SMTP backend to a real SMTP server process (tests/smtp_sink.py,
aiosmtpd) and read back from what it received."""

import email
import email.policy
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from datetime import time as clock
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from away import services
from away.models import AwayProfile, Presence
from inform.models import Notification
from inform.services import send_inform
from tests.conftest import stop_process

from .conftest import ROOT, free_port, live_database_url

pytestmark = pytest.mark.django_db


class SmtpSink:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "smtp_sink.py"), str(self.port), str(folder)],
            stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout.readline().strip() == "ready"

    def messages(self) -> list[email.message.EmailMessage]:
        return [
            email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in sorted(self.folder.glob("*.eml"), key=lambda p: int(p.stem))
        ]

    def wait_for(self, count: int, timeout: float = 10.0) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.messages()
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"the SMTP server got {len(self.messages())} messages, not {count}")

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture
def smtp(tmp_path, settings):
    sink = SmtpSink(tmp_path / "smtp")
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sink.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.INFORM_EMAIL_SITE_URL = "https://mblog.example.com"
    yield sink
    sink.stop()


def due(notifications, settings) -> None:
    """Make these notifications older than the delay, as time passing would."""
    Notification.objects.filter(id__in=[n.id for n in notifications]).update(
        created=timezone.now() - timedelta(seconds=settings.AWAY_EMAIL_DELAY + 1)
    )


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content()


def html_of(message) -> str:
    return message.get_body(("html",)).get_content()


@pytest.fixture
def people(make_user):
    return make_user("alice", email="alice@example.com"), make_user("bob", email="bob@example.com")


def test_unread_notifications_become_one_digest_after_the_delay(smtp, settings, people):
    alice, bob = people
    first = send_inform(to=alice, verb="reply", text="bob replied to Hello", actor=bob, url="/posts/1/")
    call_command("send_due_emails")
    assert smtp.messages() == []  # not yet due
    due(first, settings)
    second = send_inform(to=alice, verb="mention", text="bob mentioned you", actor=bob, url="/posts/2/")
    call_command("send_due_emails")
    (message,) = smtp.wait_for(1)
    assert message["To"] == "alice@example.com"
    assert message["Subject"] == "mblog: 2 new notifications"
    for body in (text_of(message), html_of(message)):
        assert "bob replied to Hello" in body and "bob mentioned you" in body
        assert f"https://mblog.example.com/inform/{first[0].id}/open/" in body
        assert f"https://mblog.example.com/inform/{second[0].id}/open/" in body
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Unsubscribe"].strip().startswith("<https://mblog.example.com/away/unsubscribe/")
    call_command("send_due_emails")
    assert len(smtp.messages()) == 1  # nothing twice


def test_read_deleted_or_unwanted_meanwhile_is_not_emailed(smtp, settings, people, make_user):
    alice, bob = people
    carol = make_user("carol", email="carol@example.com")
    read = send_inform(to=alice, verb="reply", text="read already", actor=bob)
    deleted = send_inform(to=alice, verb="reply", text="deleted meanwhile", actor=bob)
    site = send_inform(everyone=True, verb="site_update", text="we moved")
    kept = send_inform(to=carol, verb="follow", text="bob followed you", actor=bob)
    due(read + deleted + site + kept, settings)
    Notification.objects.filter(id=read[0].id).update(read_at=timezone.now())
    Notification.objects.filter(id=deleted[0].id).delete()
    call_command("send_due_emails")
    (message,) = smtp.wait_for(1)
    assert message["To"] == "carol@example.com"
    assert "bob followed you" in text_of(message) and "we moved" not in text_of(message)
    assert len(smtp.messages()) == 1


def test_no_email_while_the_person_has_a_visible_tab(smtp, settings, people, make_user):
    alice, bob = people
    carol = make_user("carol", email="carol@example.com")
    looking = send_inform(to=alice, verb="reply", text="alice is looking", actor=bob)
    hidden = send_inform(to=carol, verb="reply", text="carol's tab is hidden", actor=bob)
    due(looking + hidden, settings)
    Presence.objects.create(conn="a", user=alice, visible=True, seen=timezone.now())
    Presence.objects.create(conn="c", user=carol, visible=False, seen=timezone.now())
    call_command("send_due_emails")
    (message,) = smtp.wait_for(1)
    assert message["To"] == "carol@example.com"
    # She was on the site when it came due: it stays handled after she leaves.
    Presence.objects.filter(user=alice).delete()
    call_command("send_due_emails")
    assert [m["To"] for m in smtp.messages()] == ["carol@example.com"]


def test_one_click_unsubscribe_per_kind(smtp, settings, people):
    alice, bob = people
    due(send_inform(to=alice, verb="reply", text="bob replied", actor=bob), settings)
    call_command("send_due_emails")
    (message,) = smtp.wait_for(1)
    url = urlsplit(message["List-Unsubscribe"].strip().strip("<>"))
    mail_client = Client(enforce_csrf_checks=True)  # no session, no CSRF token: RFC 8058
    assert mail_client.get(url.path).status_code == 200  # a link scanner unsubscribes nobody
    assert AwayProfile.objects.get(user=alice).unsubscribed == []
    answer = mail_client.post(url.path, "List-Unsubscribe=One-Click",
                              content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 200
    assert AwayProfile.objects.get(user=alice).unsubscribed == ["reply"]
    assert mail_client.post(url.path[:-5] + "xxxx/").status_code == 400  # a forged token
    assert services.unsubscribe(10**9, ["reply"]) is None  # an account deleted since: nothing to do
    # Replies are no longer emailed; follows still are.
    due(send_inform(to=alice, verb="reply", text="another reply", actor=bob), settings)
    due(send_inform(to=alice, verb="follow", text="bob followed you", actor=bob), settings)
    call_command("send_due_emails")
    second = smtp.wait_for(2)[1]
    assert "bob followed you" in text_of(second) and "another reply" not in text_of(second)


def test_a_failed_send_is_tried_again(smtp, settings, people):
    alice, bob = people
    due(send_inform(to=alice, verb="reply", text="bob replied", actor=bob), settings)
    settings.EMAIL_PORT = free_port()  # nobody listens there
    with pytest.raises(SystemExit):
        call_command("send_due_emails")
    settings.EMAIL_PORT = smtp.port
    call_command("send_due_emails")
    assert [m["To"] for m in smtp.wait_for(1)] == ["alice@example.com"]


# --- quiet hours (14.4) ---------------------------------------------------------------


def test_quiet_hours_in_the_persons_time_zone():
    profile = AwayProfile(time_zone="Asia/Tokyo", quiet_start=clock(22), quiet_end=clock(7))
    tokyo = ZoneInfo("Asia/Tokyo")
    assert services.in_quiet_hours(profile, datetime(2026, 1, 1, 23, 30, tzinfo=tokyo))
    assert services.in_quiet_hours(profile, datetime(2026, 1, 2, 6, 59, tzinfo=tokyo))
    assert not services.in_quiet_hours(profile, datetime(2026, 1, 2, 7, 0, tzinfo=tokyo))
    # 14:00 UTC is 23:00 in Tokyo.
    assert services.in_quiet_hours(profile, datetime(2026, 1, 1, 14, 0, tzinfo=ZoneInfo("UTC")))
    day = AwayProfile(time_zone="Europe/Berlin", quiet_start=clock(12), quiet_end=clock(13))
    assert services.in_quiet_hours(day, datetime(2026, 7, 1, 10, 30, tzinfo=ZoneInfo("UTC")))  # 12:30 CEST
    assert not services.in_quiet_hours(AwayProfile(), datetime(2026, 1, 1, tzinfo=ZoneInfo("UTC")))


def test_email_waits_until_quiet_hours_end(smtp, settings, people):
    alice, bob = people
    zone = "America/New_York"
    local = timezone.now().astimezone(ZoneInfo(zone))
    AwayProfile.objects.create(
        user=alice, time_zone=zone,
        quiet_start=(local - timedelta(hours=1)).time(), quiet_end=(local + timedelta(hours=1)).time(),
    )
    due(send_inform(to=alice, verb="reply", text="bob replied at night", actor=bob), settings)
    outcome = services.send_due_emails()
    assert outcome.quiet == [alice.pk] and smtp.messages() == []
    # The window ends: it goes out then.
    AwayProfile.objects.filter(user=alice).update(quiet_end=(local - timedelta(minutes=1)).time())
    call_command("send_due_emails")
    assert "bob replied at night" in text_of(smtp.wait_for(1)[0])


def test_settings_page_sets_kinds_time_zone_and_quiet_hours(as_alice, alice):
    page = as_alice.get("/away/settings/")
    assert page.status_code == 200 and b"Quiet hours" in page.content
    answer = as_alice.post("/away/settings/", {
        "email_kinds": ["mention"], "time_zone": "Europe/Berlin", "quiet_start": "22:00", "quiet_end": "07:00",
    })
    assert answer.status_code == 302
    profile = AwayProfile.objects.get(user=alice)
    assert (profile.unsubscribed, profile.time_zone) == (["follow", "reply"], "Europe/Berlin")
    assert (profile.quiet_start, profile.quiet_end) == (clock(22), clock(7))
    bad = as_alice.post("/away/settings/", {"time_zone": "Mars/Olympus", "quiet_start": "22:00"})
    assert bad.status_code == 200 and b"Unknown time zone" in bad.content


# --- two senders at once ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_senders_at_once_email_nobody_twice(smtp, settings, make_user):
    bob = make_user("bob")
    people = [make_user(f"p{i}", email=f"p{i}@example.com") for i in range(12)]
    for p in people:
        due(send_inform(to=p, verb="reply", text=f"bob replied to {p.username}", actor=bob), settings)
    env = {**os.environ, "DATABASE_URL": live_database_url(), "INFORM_EMAIL_SITE_URL": "https://mblog.example.com",
           "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
           "DJANGO_EMAIL_HOST": "127.0.0.1", "DJANGO_EMAIL_PORT": str(smtp.port)}
    senders = [
        subprocess.Popen([sys.executable, "manage.py", "send_due_emails"], cwd=ROOT, env=env) for _ in range(2)
    ]
    assert [s.wait(60) for s in senders] == [0, 0]
    received = sorted(m["To"] for m in smtp.messages())
    assert received == sorted(p.email for p in people)


def test_the_deploy_files_run_the_email_command(tmp_path):
    """The cron line render.py writes runs the command through the shipped wrapper."""
    import re

    rendered = tmp_path / "rendered"
    subprocess.run([sys.executable, str(ROOT / "deploy" / "render.py"), str(ROOT / "deploy" / "values.example"),
                    str(rendered)], check=True, capture_output=True)
    cron = (rendered / "cron.d" / "mblog").read_text()
    (line,) = [x for x in cron.splitlines() if x and not x.startswith("#") and "=" not in x.split()[0]]
    assert re.fullmatch(r"\* \* \* \* \* mblog mblog-manage send_due_emails >> /var/log/mblog/email\.log 2>&1", line)
    env = (rendered / "mblog.env").read_text()
    assert "INFORM_EMAIL_SITE_URL=https://mblog.example.com" in env
    from django.core.management import get_commands

    assert get_commands()["send_due_emails"] == "away"


def test_inform_preferences_decide_what_the_digest_carries(smtp, settings, people):
    """"off" is never sent; "by email" was mailed at once by inform, so not again."""
    from inform.services import preferences_save

    alice, bob = people
    preferences_save(alice, {"reply": "off", "mention": "email", "follow": "site"})
    made = (send_inform(to=alice, verb="reply", text="a reply", actor=bob)
            + send_inform(to=alice, verb="mention", text="a mention", actor=bob)
            + send_inform(to=alice, verb="follow", text="a follow", actor=bob))
    due(made, settings)
    call_command("send_due_emails")
    (message,) = smtp.wait_for(1)
    assert "a follow" in text_of(message)
    assert "a mention" not in text_of(message) and "a reply" not in text_of(message)
