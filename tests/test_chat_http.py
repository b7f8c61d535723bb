"""The chat pages and the older-messages API over HTTP."""

import pytest
from django.test import Client

from chat.models import Message, Room
from chat.services import ChatError, chat_message_post, clean_room_name, room_get_or_create

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def test_room_list_shows_rooms_and_creates_one_by_name(make_user):
    alice = make_user("alice")
    room_get_or_create(name="lobby")
    c = signed_in(alice)
    page = c.get("/chat/")
    assert page.status_code == 200 and b"#lobby" in page.content and b'id="room-create"' in page.content

    r = c.post("/chat/", {"name": "  Django-Help "})
    assert r.status_code == 302 and r["Location"] == "/chat/django-help/"
    assert Room.objects.get(name="django-help").created_by == alice


@pytest.mark.parametrize("name", ["", "has space", "dots.are.out", "-leading", "x" * 41, "<script>", "ünï"])
def test_room_names_are_validated(make_user, name):
    c = signed_in(make_user("alice"))
    r = c.post("/chat/", {"name": name})
    assert r.status_code == 400 and b'id="room-error"' in r.content
    with pytest.raises(ChatError):
        clean_room_name(name)
    assert not Room.objects.exclude(name="lobby").exists()


def test_anonymous_cannot_create_rooms_and_is_asked_to_sign_in():
    assert Client().post("/chat/", {"name": "mine"}).status_code == 302
    assert not Room.objects.filter(name="mine").exists()
    page = Client().get("/chat/lobby/")
    assert page.status_code == 200
    assert b'id="chat-signin"' in page.content and b"/accounts/login/?next=/chat/lobby/" in page.content
    assert b"chat.js" not in page.content


def test_room_page_shows_the_last_50_as_text(make_user):
    alice = make_user("alice")
    room = room_get_or_create(name="lobby")
    for i in range(55):
        chat_message_post(room=room, author=alice, text=f"msg {i}")
    chat_message_post(room=room, author=alice, text="<script>alert(1)</script>")
    page = signed_in(alice).get("/chat/lobby/")
    html = page.content.decode()
    assert html.count('<li class="chat-msg') == 50
    assert "msg 5<" not in html and "msg 6<" in html
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    last = Message.objects.latest("id").id
    assert f'data-last="{last}"' in html and 'id="chat-older"' in html


def test_unknown_room_is_a_404_and_bad_names_are_404(make_user):
    c = signed_in(make_user("alice"))
    r = c.get("/chat/new-room/")  # a GET creates nothing (issue 10.8)
    assert r.status_code == 404 and "no room #new-room yet" in r.content.decode()
    assert not Room.objects.filter(name="new-room").exists()
    assert c.get("/chat/Bad%20Name/").status_code == 404
    assert c.get("/chat/Lobby/")["Location"] == "/chat/lobby/"


def test_posting_without_javascript(make_user):
    alice = make_user("alice")
    c = signed_in(alice)
    r = c.post("/chat/lobby/", {"text": "  plain form  "})
    assert r.status_code == 302
    assert Message.objects.get().text == "plain form"
    c.post("/chat/lobby/", {"text": "   "})
    assert Message.objects.count() == 1


def test_older_messages_api_pages_backwards(make_user):
    alice = make_user("alice")
    room = room_get_or_create(name="lobby")
    ids = [chat_message_post(room=room, author=alice, text=f"m{i}").id for i in range(120)]
    c = signed_in(alice)

    page = c.get("/chat/lobby/messages/", {"before": ids[70]}).json()
    assert [m["id"] for m in page["messages"]] == ids[20:70] and page["more"] is True
    assert page["messages"][0] == {
        "type": "message", "id": ids[20], "user": "alice", "text": "m20",
        "created": Message.objects.get(id=ids[20]).created.isoformat(),
    }
    page = c.get("/chat/lobby/messages/", {"before": ids[20]}).json()
    assert [m["id"] for m in page["messages"]] == ids[:20] and page["more"] is False
    assert len(c.get("/chat/lobby/messages/", {"limit": 200}).json()["messages"]) == 120

    assert c.get("/chat/lobby/messages/", {"limit": 0}).status_code == 400
    assert c.get("/chat/lobby/messages/", {"before": "x"}).status_code == 400
    assert c.get("/chat/nowhere/messages/").status_code == 404
    anon = Client().get("/chat/lobby/messages/")
    assert anon.status_code == 401 and anon.json()["error"] == "unauthenticated"


def test_room_list_puts_busy_rooms_first(make_user):
    from django.utils import timezone

    from chat.models import Presence

    alice, bob = make_user("alice"), make_user("bob")
    quiet, talky, busy = (room_get_or_create(name=n) for n in ("quiet", "talky", "busy"))
    chat_message_post(room=talky, author=alice, text="hi")
    for i, u in enumerate((alice, bob, bob)):
        Presence.objects.create(room=busy, user=u, conn=f"c{i}", seen=timezone.now())
    html = signed_in(alice).get("/chat/").content.decode()
    assert html.index("#busy") < html.index("#talky") < html.index("#lobby") < html.index("#quiet")
    assert "2 here now" in html and "last message" in html
