"""Issue 10 item 8, the smaller holes: each attack as it was made."""


from unittest.mock import ANY

import pytest
from channels.db import database_sync_to_async as db
from django.test import Client

from inform.services import send_inform

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    "target, expected",
    [
        ("foo", "/inform/"),  # was a 500: redirect() looked it up as a URL name
        ("inform_list", "/inform/"),
        ("https://evil.example/", "/inform/"),
        ("//evil.example/", "/inform/"),
        ("javascript:alert(1)", "/inform/"),
        ("", "/inform/"),
        ("/inform/?page=2", "/inform/?page=2"),
    ],
)
def test_mark_read_redirects_only_to_this_site(as_alice, alice, target, expected):
    (n,) = send_inform(to=alice, verb="mention", text="hi")
    r = as_alice.post("/inform/read/", {"id": n.id, "next": target})
    assert r.status_code == 302 and r["Location"] == expected


def test_deeply_nested_json_body_is_a_400(as_alice):
    for body in ("[" * 100_000, "[" * 5000 + "]" * 5000, '{"ids":' + "[" * 3000 + "]" * 3000 + "}"):
        r = as_alice.post("/inform/api/read/", body, content_type="application/json")
        assert r.status_code == 400 and r.json()["error"] == "bad_request"
    assert as_alice.post("/inform/api/read/", {"all": True}, content_type="application/json").status_code == 200


@pytest.mark.asyncio
async def test_deeply_nested_json_frame_is_an_error_frame(sockets, make_user):
    alice = await db(make_user)("alice")
    s = await sockets.open(user=alice)
    await s.send("[" * 4000 + "]" * 4000)
    assert (await s.recv())["code"] == "bad_request"
    await s.send({"type": "sync", "after": 0})
    assert await s.recv() == {"type": "unread", "unread": 0, "unseen": 0, "version": ANY}


def test_reading_a_room_page_creates_no_room(make_user):
    from chat.models import Message, Room

    alice = make_user("alice")
    c = Client()
    c.force_login(alice)
    for client in (c, Client()):
        r = client.get("/chat/typo-room/")
        assert r.status_code == 404 and "no room #typo-room yet" in r.content.decode()
    assert c.post("/chat/typo-room/", {"text": "hello"}).status_code == 404
    assert not Room.objects.filter(name="typo-room").exists() and not Message.objects.exists()
    # Creating is the rooms page's form (a POST), and then the room works.
    r = c.post("/chat/", {"name": "typo-room"})
    assert r.status_code == 302 and r["Location"] == "/chat/typo-room/"
    assert c.get("/chat/typo-room/").status_code == 200


@pytest.mark.asyncio
async def test_a_socket_to_a_missing_room_is_closed_with_4404(sockets, make_user):
    from chat.models import Room

    alice = await db(make_user)("alice")
    s = await sockets.open("/ws/chat/no-such-room/", user=alice)
    assert (await s.recv())["code"] == "not_found"
    assert await s.comm.receive_output(timeout=2) == {"type": "websocket.close", "code": 4404}
    assert not await db(Room.objects.filter(name="no-such-room").exists)()
    await db(Room.objects.get_or_create)(name="lobby")
    ok = await sockets.open("/ws/chat/lobby/", user=alice)
    assert (await ok.recv())["type"] == "history"


def deploy_check(**extra) -> set[str]:
    import re
    import secrets
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {
        "PATH": "/usr/bin:/bin", "DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "mblog.example.com", "DATABASE_URL": "sqlite:////tmp/mblog-check.sqlite3", **extra,
    }
    r = subprocess.run([sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
    return set(re.findall(r"\((security\.W\d+)\)", r.stdout + r.stderr))


@pytest.mark.slow  # starts Django in a process of its own
def test_check_deploy_has_no_unexplained_warning():
    from tests.conftest import ROOT

    explained = (ROOT / "docs" / "security.md").read_text()
    behind_proxy = deploy_check(DJANGO_BEHIND_PROXY="1", DJANGO_CSRF_TRUSTED_ORIGINS="https://mblog.example.com")
    alone = deploy_check()
    assert "security.W012" not in alone | behind_proxy and "security.W016" not in alone | behind_proxy
    for code in alone | behind_proxy:
        assert f"`{code}`" in explained, f"{code} from check --deploy is not explained in docs/security.md"


def test_the_env_file_is_never_readable_by_others(tmp_path, monkeypatch):
    """deploy/render.py writes the env file (the secret key, the database password) with
    mode 0600 from the start: with chmod taken away it still is, also over an old file."""
    import os
    import sys

    from tests.conftest import ROOT

    sys.path.insert(0, str(ROOT / "deploy"))
    try:
        import render
    finally:
        sys.path.remove(str(ROOT / "deploy"))
    values = render.parse(str(ROOT / "deploy" / "values.example"))
    old_umask = os.umask(0o022)
    try:
        monkeypatch.setattr(render.os, "chmod", lambda *a, **k: None)
        render.render(values, tmp_path)
        env_file = tmp_path / "mblog.env"
        assert oct(env_file.stat().st_mode & 0o777) == oct(0o600)
        env_file.chmod(0o644)  # an old copy, readable
        render.render(values, tmp_path)
        assert oct(env_file.stat().st_mode & 0o777) == oct(0o600)
    finally:
        os.umask(old_umask)
