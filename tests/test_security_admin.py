"""Issue 10 item 3: admin permission bypass. Staff users without the permissions attack
the real admin views: listing, "send again" and "publish as site update"."""

import pytest
from channels.db import database_sync_to_async as db
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.test import Client

from chat.models import Message, Room
from inform.models import Notification
from inform.services import send_inform

pytestmark = pytest.mark.django_db(transaction=True)

NOTES = "/admin/inform/notification/"
UPDATES = "/admin/inform/siteupdate/"
MESSAGES = "/admin/chat/message/"


def staff(django_user_model, name: str, *perms: str):
    user = django_user_model.objects.create_user(name, password="staff-pass-123", is_staff=True)
    for perm in perms:
        app, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app, codename=codename))
    c = Client()
    c.force_login(user)
    return c


def fill(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    (private,) = send_inform(to=alice, verb="reply", text="bob replied: my phone is 555-0100", actor=bob)
    (site,) = send_inform(everyone=True, verb="site_update", text="platypus week")
    return alice, bob, private, site


def site_update_count() -> int:
    return Notification.objects.filter(recipient__isnull=True).count()


def test_staff_without_permissions_cannot_list_or_act_on_site_updates(make_user, django_user_model):
    _, _, private, site = fill(make_user)
    c = staff(django_user_model, "nobody")
    assert c.get(UPDATES).status_code == 403
    assert c.get(NOTES).status_code == 403
    assert c.post(UPDATES, {"action": "send_again", ACTION_CHECKBOX_NAME: [site.id]}).status_code == 403
    assert c.post(NOTES, {"action": "publish_as_site_update", ACTION_CHECKBOX_NAME: [private.id]}).status_code == 403
    assert site_update_count() == 1


def test_view_only_staff_cannot_publish_or_send_again(make_user, django_user_model):
    _, _, private, site = fill(make_user)
    c = staff(django_user_model, "viewer", "inform.view_notification", "inform.view_siteupdate")
    r = c.get(NOTES)
    assert r.status_code == 200
    assert r.context["action_form"] is None  # no action offered
    r = c.post(NOTES, {"action": "publish_as_site_update", ACTION_CHECKBOX_NAME: [private.id]})
    assert r.status_code == 200
    assert site_update_count() == 1  # alice's private text was not broadcast
    assert not Notification.objects.filter(recipient__isnull=True, text=private.text).exists()
    assert c.get(UPDATES).status_code == 200
    assert c.get(f"{UPDATES}add/").status_code == 403
    assert c.post(f"{UPDATES}add/", {"text": "from a viewer", "url": ""}).status_code == 403
    assert site_update_count() == 1


@pytest.mark.asyncio
async def test_send_again_needs_change_permission(sockets, make_user, django_user_model):
    _, _, private, site = await db(fill)(make_user)
    anon = await sockets.open()
    viewer = await db(staff)(django_user_model, "viewer", "inform.view_siteupdate", "inform.view_notification")
    for admin_url in (UPDATES, NOTES):  # the action is not offered, and posting it does nothing
        r = await db(viewer.post)(admin_url, {"action": "send_again", ACTION_CHECKBOX_NAME: [site.id]})
        assert r.status_code == 200 and r.context["action_form"] is None
    assert await anon.silent(0.5)
    # with the permission it works
    changer = await db(staff)(django_user_model, "changer", "inform.view_siteupdate", "inform.change_siteupdate")
    r = await db(changer.post)(UPDATES, {"action": "send_again", ACTION_CHECKBOX_NAME: [site.id]})
    assert r.status_code == 302
    assert (await anon.recv())["text"] == "platypus week"


def test_publish_needs_add_permission_and_works_with_it(make_user, django_user_model):
    _, _, private, site = fill(make_user)
    editor = staff(django_user_model, "editor", "inform.view_notification", "inform.add_siteupdate")
    r = editor.post(NOTES, {"action": "publish_as_site_update", ACTION_CHECKBOX_NAME: [private.id]})
    assert r.status_code == 302
    assert site_update_count() == 2


def test_view_only_staff_cannot_delete_chat_messages(make_user, django_user_model):
    alice = make_user("alice")
    room, _ = Room.objects.get_or_create(name="lobby")
    m = Message.objects.create(room=room, user=alice, text="hi")
    c = staff(django_user_model, "viewer", "chat.view_message")
    assert c.get(MESSAGES).status_code == 200
    c.post(MESSAGES, {"action": "delete_selected", ACTION_CHECKBOX_NAME: [m.id], "post": "yes"})
    assert c.post(f"{MESSAGES}{m.id}/delete/", {"post": "yes"}).status_code == 403
    assert Message.objects.filter(pk=m.pk).exists()
