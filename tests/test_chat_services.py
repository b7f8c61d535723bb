"""chat.services in process: what each write stores and pushes (pushes captured, no
sockets; tests/test_chat.py has the same paths end to end on real sockets)."""

import pytest
from django.db import transaction
from django.test import Client

from chat.models import Message
from chat.services import ChatError, chat_message_post, chat_messages_delete, room_get_or_create
from inform.models import Notification

pytestmark = pytest.mark.django_db


def test_a_message_is_stored_then_pushed_to_its_room_with_its_id(capture_pushes, make_user):
    alice = make_user("alice")
    lobby, other = room_get_or_create(name="lobby"), room_get_or_create(name="other")
    with capture_pushes() as pushes:
        m = chat_message_post(room=lobby, author=alice, text="  hello <b>bob</b>  ")
    assert pushes == [
        (f"chat.{lobby.id}", {"frame": {
            "type": "message", "id": m.id, "user": "alice", "text": "hello <b>bob</b>", "created": m.created.isoformat(),
        }}),
    ]
    assert f"chat.{other.id}" not in {g for g, _ in pushes}


def test_a_mention_informs_the_mentioned_user_only(capture_pushes, make_user):
    alice, bob, _ = make_user("alice"), make_user("bob"), make_user("carol")
    lobby = room_get_or_create(name="lobby")
    with capture_pushes() as pushes:
        chat_message_post(room=lobby, author=alice, text="@bob and @nobody, look; @alice talks to herself")
    (n,) = Notification.objects.all()
    assert (n.recipient, n.actor, n.verb, n.url) == (bob, alice, "mention", "/chat/lobby/")
    assert [g for g, _ in pushes] == [f"chat.{lobby.id}", f"user.{bob.pk}"]
    assert pushes.frames(f"user.{bob.pk}")[0]["id"] == n.id


@pytest.mark.parametrize("text", ["", "   ", "x" * 2001, "nul \x00 byte"])
def test_bad_text_stores_and_pushes_nothing(capture_pushes, make_user, text):
    alice = make_user("alice")
    lobby = room_get_or_create(name="lobby")
    with capture_pushes() as pushes, pytest.raises(ChatError):
        chat_message_post(room=lobby, author=alice, text=text)
    assert pushes == [] and not Message.objects.exists()


def test_a_message_rolled_back_is_never_pushed(capture_pushes, make_user):
    alice = make_user("alice")
    lobby = room_get_or_create(name="lobby")
    with capture_pushes() as pushes, pytest.raises(RuntimeError), transaction.atomic():
        chat_message_post(room=lobby, author=alice, text="hi @alice")
        raise RuntimeError("the request failed after the post")
    assert pushes == [] and not Message.objects.exists()


def test_delete_pushes_each_removal_to_its_own_room(capture_pushes, make_user):
    alice = make_user("alice")
    lobby, other = room_get_or_create(name="lobby"), room_get_or_create(name="other")
    a = chat_message_post(room=lobby, author=alice, text="one")
    b = chat_message_post(room=other, author=alice, text="two")
    chat_message_post(room=lobby, author=alice, text="kept")
    with capture_pushes() as pushes:
        assert chat_messages_delete(Message.objects.filter(id__in=[a.id, b.id])) == 2
    assert sorted(pushes) == sorted([
        (f"chat.{lobby.id}", {"frame": {"type": "message_removed", "id": a.id}}),
        (f"chat.{other.id}", {"frame": {"type": "message_removed", "id": b.id}}),
    ])
    assert list(Message.objects.values_list("text", flat=True)) == ["kept"]


def test_admin_deletes_go_through_the_service(capture_pushes, make_user, django_user_model):
    alice = make_user("alice")
    lobby = room_get_or_create(name="lobby")
    first, second = (chat_message_post(room=lobby, author=alice, text=t) for t in ("spam", "more spam"))
    admin = django_user_model.objects.create_superuser("admin", "admin@example.com", "pw-admin-123")
    client = Client()
    client.force_login(admin)
    assert client.get("/admin/chat/message/").status_code == 200
    assert client.get("/admin/chat/room/").status_code == 200
    with capture_pushes() as pushes:
        r = client.post(f"/admin/chat/message/{first.id}/delete/", {"post": "yes"})
        assert r.status_code == 302
        r = client.post(
            "/admin/chat/message/", {"action": "delete_selected", "_selected_action": [second.id], "post": "yes"}
        )
        assert r.status_code == 302
    assert pushes.frames(f"chat.{lobby.id}") == [
        {"type": "message_removed", "id": first.id}, {"type": "message_removed", "id": second.id},
    ]
    assert not Message.objects.exists()
