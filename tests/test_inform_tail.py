"""inform/tail.py: with no shared layer, the server pushes rows other processes stored,
once each, oldest first, through the normal push (tests/test_embedded_default.py runs
it in a real server against a real `bin/manage send_inform`)."""

import pytest

from inform import push, selectors, tail
from inform.services import send_inform

pytestmark = pytest.mark.django_db


def test_the_tail_pushes_what_was_stored_since_it_looked(alice, bob, capture_pushes, monkeypatch):
    send_inform(to=alice, verb="follow", actor=bob, text="already there")
    table = tail.TableTail()
    monkeypatch.setattr(tail, "BATCH", 2)
    personal = [send_inform(to=alice, verb="mention", actor=bob, text=f"m{i}")[0] for i in range(2)]
    site = send_inform(everyone=True, verb="site_update", text="maintenance")[0]
    with capture_pushes() as pushes:
        assert table.poll() == 2  # a batch at a time
        assert table.poll() == 1
        assert table.poll() == 0
    informs = pushes.frames(push.user_group(alice.pk))
    assert [f["id"] for f in informs] == [n.id for n in personal]
    assert informs[-1]["unread"] == selectors.unread_count(alice) == 4  # three personal, one site update
    (site_push,) = [body for group, body in pushes if group == push.SITE_GROUP]
    assert site_push["frame"]["id"] == site.id and site_push["anonymous_frame"]["event"] == "site_update"


def test_only_the_embedded_default_tails(settings):
    from realtime import hub

    assert (tail.start in hub._local_sources) == (not settings.REDIS_URL)
