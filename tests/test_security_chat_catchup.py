"""Issue 10 item 7: chat catch-up amplification. A ~350-byte handshake with ?after= far
back made the server send ~1 MB; now one handshake costs at most one bounded frame, and
the client is told to page older messages over HTTP."""

import json

import pytest
from channels.db import database_sync_to_async as db
from django.test import Client

from chat.models import Message, Room

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


def fill(author, n: int, text: str) -> tuple[Room, list[int]]:
    room, _ = Room.objects.get_or_create(name="lobby")  # a migration may have made it
    Message.objects.bulk_create([Message(room=room, user=author, text=f"{i} {text}") for i in range(n)])
    return room, list(Message.objects.filter(room=room).order_by("id").values_list("id", flat=True))


async def join_bytes(sockets, user, query: str) -> tuple[dict, int]:
    """The history frame of a join, and every byte the server sent until presence."""
    s = await sockets.open(f"/ws/chat/lobby/{query}", user=user)
    raw = await s.comm.receive_from(timeout=5)
    total = len(raw.encode())
    history = json.loads(raw)
    assert history["type"] == "history"
    while True:
        raw = await s.comm.receive_from(timeout=5)
        total += len(raw.encode())
        if json.loads(raw)["type"] == "presence":
            return history, total


@pytest.mark.parametrize("query", ["?after=0", "?after=1", "", "?after=abc"])
async def test_far_back_catch_up_is_bounded_and_says_to_page(sockets, make_user, settings, query):
    alice, bob = await db(make_user)("alice"), await db(make_user)("bob")
    room, ids = await db(fill)(bob, 600, "x" * 1990)
    cap = settings.WS_MAX_MESSAGE_BYTES
    history, sent = await join_bytes(sockets, alice, query)
    assert sent <= cap + 1024  # was ~1.2 MB for these 600 messages
    got = [m["id"] for m in history["messages"]]
    assert 0 < len(got) < 50 and got == ids[-len(got):]  # the newest, in order
    assert history["more"] is True and history["before"] == got[0]
    if query.startswith("?after=") and query != "?after=abc":
        assert history["reset"] is True
    # Paging back over HTTP works from "before".
    c = Client()
    await db(c.force_login)(alice)
    page = json.loads((await db(c.get)(f"/chat/lobby/messages/?before={history['before']}")).content)
    assert [m["id"] for m in page["messages"]] == ids[-len(got) - 50 : -len(got)] and page["more"] is True


async def test_no_frame_outgrows_daphnes_limit_even_with_wide_characters(sockets, make_user, settings):
    alice, bob = await db(make_user)("alice"), await db(make_user)("bob")
    room, ids = await db(fill)(bob, 60, "\U0001f600" * 1990)  # \\ud83d\\ude00: 12 bytes a character in JSON
    history, sent = await join_bytes(sockets, alice, "?after=0")
    assert sent <= settings.WS_MAX_MESSAGE_BYTES + 1024
    assert len(history["messages"]) >= 1 and history["messages"][-1]["id"] == ids[-1]


async def test_a_short_catch_up_is_still_exact(sockets, make_user):
    alice, bob = await db(make_user)("alice"), await db(make_user)("bob")
    room, ids = await db(fill)(bob, 600, "x" * 1990)
    history, _ = await join_bytes(sockets, alice, f"?after={ids[-6]}")
    assert [m["id"] for m in history["messages"]] == ids[-5:]
    assert "reset" not in history and "more" not in history
