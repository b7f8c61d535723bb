import pytest
from channels.db import database_sync_to_async

from inform.services import send_inform

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

asend = database_sync_to_async(send_inform)


async def test_signed_in_socket_gets_its_own_notification_live(sockets, make_user):
    alice = await database_sync_to_async(make_user)("alice")
    bob = await database_sync_to_async(make_user)("bob")
    a = await sockets.open(user=alice)
    b = await sockets.open(user=bob)
    (n,) = await asend(to=alice, verb="follow", text="bob followed you", actor=bob, url="/u/bob/")
    frame = await a.recv()
    assert frame == {
        "type": "inform", "id": n.id, "verb": "follow", "actor": "bob", "text": "bob followed you",
        "url": "/u/bob/", "created": n.created.isoformat(), "unread": 1, "unseen": 1,
        "version": [1, n.id],  # alice's first counters change; the newest id
    }
    assert await b.silent()
