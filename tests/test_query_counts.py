"""Query budgets: the notification list and the badge cost the same whatever the number
of notifications; the unread count is one indexed query even at 10,000 rows."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from inform import selectors, services
from inform.context_processors import badge
from inform.models import InformState, Notification, PersonMute, SiteUpdateRead, TopicPreference
from inform.services import notifications_mark_read, preferences_save, send_inform

pytestmark = pytest.mark.django_db


def fill(alice, bob, n: int, site_every: int = 4) -> list[Notification]:
    """n notifications for alice, every site_every-th a site update, some read."""
    rows = [
        Notification(recipient=None if i % site_every == 0 else alice, actor=bob, verb="follow", text=f"n{i}")
        for i in range(n)
    ]
    for r in rows:
        if r.recipient is None:
            r.verb = "site_update"
    Notification.objects.bulk_create(rows)
    # read a few of each kind, so read state has to be looked at
    personal = [r.id for r in rows if r.recipient_id][:3]
    site = [r.id for r in rows if r.recipient_id is None][:2]
    notifications_mark_read(alice, personal + site)
    return rows


def queries(fn) -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        fn()
    return [q["sql"] for q in ctx.captured_queries]


@pytest.fixture
def pair(make_user):
    return make_user("alice"), make_user("bob")


@pytest.mark.parametrize("path", ["/inform/", "/inform/?page=2", "/", "/u/bob/", "/inform/api/unread/"])
def test_pages_take_constant_queries(pair, path):
    alice, bob = pair
    c = Client()
    c.force_login(alice)
    fill(alice, bob, 25)  # enough for a second page
    c.get(path)  # warm up (session, content types)
    small = queries(lambda: c.get(path))
    fill(alice, bob, 60)
    r = c.get(path)
    large = queries(lambda: c.get(path))
    assert r.status_code == 200
    assert len(large) == len(small), "\n".join(large)


def test_list_query_count_is_the_same_for_5_and_60_notifications(make_user):
    def measure(name: str, n: int) -> int:
        alice, bob = make_user(f"{name}_a"), make_user(f"{name}_b")
        fill(alice, bob, n)
        c = Client()
        c.force_login(alice)
        c.get("/inform/")
        with CaptureQueriesContext(connection) as ctx:
            r = c.get("/inform/")
        assert r.status_code == 200
        return len(ctx.captured_queries)

    few, many = measure("few", 5), measure("many", 60)
    assert few == many
    assert many <= 8  # session, user, badge (2), count, page: no per-row queries


def test_badge_is_two_queries_whatever_the_count(pair, django_assert_num_queries):
    alice, bob = pair

    class Req:
        user = alice

    fill(alice, bob, 6)  # 2 site updates, 4 personal; 2 + 3 of them read
    with django_assert_num_queries(2):
        small = badge(Req())
    assert small["inform_unread"] == 1
    fill(alice, bob, 60)  # 15 site updates, 45 personal; 2 + 3 of them read
    with django_assert_num_queries(2):
        large = badge(Req())
    assert large["inform_unread"] == 1 + 55
    assert large["inform_last_id"] == Notification.objects.order_by("-id").first().id


def test_unread_count_of_10000_notifications_is_one_indexed_query(pair, django_assert_num_queries):
    alice, bob = pair
    Notification.objects.bulk_create(
        [Notification(recipient=alice, actor=bob, verb="follow", text=f"n{i}") for i in range(9_900)]
        + [Notification(recipient=None, verb="site_update", text=f"s{i}") for i in range(100)]
        + [Notification(recipient=bob, actor=alice, verb="follow", text=f"b{i}") for i in range(5_000)],
        batch_size=2000,
    )
    some = list(Notification.objects.filter(recipient=alice).order_by("id").values_list("id", flat=True)[:40])
    Notification.objects.filter(id__in=some).update(read_at="2026-01-01T00:00:00Z")
    site = list(Notification.objects.filter(recipient=None).order_by("id").values_list("id", flat=True)[:7])
    SiteUpdateRead.objects.bulk_create([SiteUpdateRead(user=alice, notification_id=i) for i in site])
    alice.refresh_from_db()

    with django_assert_num_queries(1):
        n = selectors.unread_count(alice)
    assert n == 9_900 - 40 + 100 - 7

    if connection.vendor != "postgresql":
        pytest.skip("the index check reads PostgreSQL's EXPLAIN")
    (sql,) = queries(lambda: selectors.unread_count(alice))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE inform_notification")
        cursor.execute("ANALYZE inform_siteupdateread")
        cursor.execute("EXPLAIN " + sql)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index" in plan, plan
    assert "Seq Scan on inform_notification" not in plan, plan


def test_sync_reads_one_batch_in_a_fixed_number_of_queries(pair, django_assert_max_num_queries):
    alice, bob = pair
    fill(alice, bob, 300)
    with django_assert_max_num_queries(2):
        batch = selectors.notifications_after(alice, 0, 200)
        [n.actor for n in batch]  # actors come with the rows
    assert len(batch) == 200


def test_a_sync_with_nothing_new_is_one_query(pair, django_assert_num_queries):
    """A reconnect storm is mostly sockets that have seen everything: their sync reads the
    resume point, the counters and the site-update preference in one statement."""
    alice, bob = pair
    fill(alice, bob, 20)
    latest = selectors.latest_notification_id()
    with django_assert_num_queries(1):
        state, rows = selectors.sync_start(alice, latest, 200)
    assert rows == [] and state.upto == latest
    assert state.counters == selectors.counters(alice) and state.counters.unread > 0
    assert state.site_updates_off is False
    with django_assert_num_queries(2):
        state, rows = selectors.sync_start(alice, 0, 200)
    assert [n.id for n in rows] == [n.id for n in selectors.notifications_after(alice, 0, 200)]
    preferences_save(alice, {"site_update": "off"})
    assert selectors.sync_state(alice).site_updates_off is True


def test_the_syncs_of_many_sockets_with_nothing_new_are_one_query(pair, make_user, django_assert_num_queries):
    """A reconnect storm's syncs, batched (realtime.batched): one statement for all their
    states, each answered as its own sync would be."""
    alice, bob = pair
    fill(alice, bob, 20)
    latest = selectors.latest_notification_id()
    users = [alice, bob, alice, make_user("carol")]
    with django_assert_num_queries(1):
        answers = selectors.sync_starts([(u, latest, 200) for u in users])
    assert answers == [selectors.sync_start(u, latest, 200) for u in users]
    assert answers[0][0].counters.unread > 0 and answers[3][0].counters.unread == 0


def test_send_inform_to_many_costs_per_recipient_not_more(pair, make_user, django_assert_max_num_queries):
    alice, bob = pair
    others = [make_user(f"u{i}") for i in range(10)]
    with django_assert_max_num_queries(len(others) + 4):
        send_inform(to=others, verb="mention", text="hi all", actor=alice)


def test_a_sync_page_uses_the_indexes_with_preferences_in_the_stream(pair):
    """The person's state (site updates since, or off) is read by subqueries evaluated
    once: the stream query stays an index scan."""
    alice, bob = pair
    Notification.objects.bulk_create(
        [Notification(recipient=bob, actor=alice, verb="follow", text=f"b{i}") for i in range(5_000)]
        + [Notification(recipient=None, verb="site_update", text=f"s{i}") for i in range(500)]
        + [Notification(recipient=alice, actor=bob, verb="follow", text=f"a{i}") for i in range(300)],
        batch_size=2000,
    )
    after = Notification.objects.order_by("id").values_list("id", flat=True)[5_200]
    with CaptureQueriesContext(connection) as ctx:
        batch = selectors.notifications_after(alice, after, 200)
    assert len(ctx.captured_queries) == 1 and len(batch) == 200
    if connection.vendor != "postgresql":
        pytest.skip("the index check reads PostgreSQL's EXPLAIN")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE inform_notification")
        cursor.execute("EXPLAIN " + ctx.captured_queries[0]["sql"])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Seq Scan on inform_notification" not in plan, plan


def test_pages_and_a_grouped_follow_take_constant_queries_with_follow_groups(make_user, settings):
    """Grouped follows (issue 13): the list, the menu and the badge cost the same however
    many follow groups there are and however large they grow, and one more follow into a
    group costs the same for a group of 2 as of 30."""
    alice = make_user("alice")
    c = Client()
    c.force_login(alice)
    followers = [make_user(f"f{i}") for i in range(32)]

    def follow(who) -> list[str]:
        return queries(lambda: send_inform(to=alice, verb="follow", actor=who, text="x", summary="followed you"))

    def page_queries() -> list[int]:
        c.get("/inform/")  # opening the list once marks everything seen: measure after that
        return [len(queries(lambda p=p: c.get(p))) for p in ("/inform/", "/inform/api/menu/", "/", "/inform/api/unread/")]

    follow(followers[0])
    small_send = follow(followers[1])
    small = page_queries()
    for f in followers[2:30]:
        follow(f)
    # that group started long ago: the next follows start a new one beside it
    Notification.objects.filter(recipient=alice).update(group="follow:0000000001")
    follow(followers[30])
    large_send = follow(followers[31])
    assert page_queries() == small
    assert len(large_send) == len(small_send), "\n".join(large_send)
    assert list(Notification.objects.filter(recipient=alice).order_by("id").values_list("count", flat=True)) == [30, 2]


def test_a_reply_finds_its_recipients_and_watchers_by_index_not_by_scanning_everyone(pair, django_user_model):
    """The recipients query runs for every notification sent: among 2,000 people and
    3,000 notifications, a reply to alice that bob's post's watchers also hear of reads
    only their rows (it once scanned every user, state row and notification per reply)."""
    alice, bob = pair
    people = django_user_model.objects.bulk_create([django_user_model(username=f"p{i}") for i in range(2_000)])
    InformState.objects.bulk_create([InformState(user=p) for p in people])
    services.topic_set(people[0], "post:9", "watch")
    Notification.objects.bulk_create(
        [Notification(recipient=p, actor=bob, verb="reply", text="r", topic="post:9", group="reply:post:9")
         for p in people[:1_500]] + [Notification(recipient=alice, actor=bob, verb="follow", text=f"f{i}")
                                      for i in range(1_500)],
        batch_size=1000,
    )
    sql, params = selectors.recipients_query(
        [alice.pk], kind="reply", actor_id=bob.pk, topic="post:9", group=("reply:post:9", "reply:post:9"))
    if connection.vendor != "postgresql":
        pytest.skip("the index check reads PostgreSQL's EXPLAIN")
    with connection.cursor() as cursor:
        for table in ("mblog_user", "inform_informstate", "inform_notification"):
            cursor.execute(f"ANALYZE {table}")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    for table in ("mblog_user", "inform_informstate", "inform_notification"):  # the big ones
        assert f"Seq Scan on {table}" not in plan, plan
    sent = send_inform(to=alice, actor=bob, verb="reply", text="r", topic="post:9")
    assert {n.recipient_id for n in sent} == {alice.pk, people[0].pk}


def test_the_pages_of_many_syncs_are_one_query_and_each_is_that_persons_stream(make_user, django_assert_num_queries):
    """A reconnect storm's syncs read their first pages together (selectors.pages_between):
    each page is what notifications_between gives that person (their rows, the site
    updates of their time, none when they turned those off), with its actor."""
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    fill(alice, bob, 40)
    fill(bob, alice, 30)
    preferences_save(bob, {"site_update": "off"})
    latecomer = make_user("latecomer")  # joined after the site updates so far
    send_inform(everyone=True, verb="site_update", text="for everyone")
    upto = selectors.latest_notification_id()
    requests = [(alice.pk, 0, upto, 200), (bob.pk, 0, upto, 7), (carol.pk, 3, upto, 200),
                (latecomer.pk, 0, upto, 200), (alice.pk, upto, upto, 200)]
    with django_assert_num_queries(1):
        pages = selectors.pages_between(requests)
    people = {u.pk: u for u in (alice, bob, carol, latecomer)}
    for (uid, after, to, limit), page in zip(requests, pages, strict=True):
        expected = selectors.notifications_between(people[uid], after, to, limit)
        assert [n.id for n in page] == [n.id for n in expected], people[uid].username
        assert [n.actor.username if n.actor_id else None for n in page] == [
            n.actor.username if n.actor_id else None for n in expected]
        assert [(n.text, n.created, n.actors) for n in page] == [(n.text, n.created, n.actors) for n in expected]
    assert len(pages[1]) == 7 and not any(n.recipient_id is None for n in pages[1])  # bob: site updates off
    assert [n.text for n in pages[3]] == ["for everyone"] and pages[4] == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's")
def test_send_inform_prepares_its_statements_once_per_connection(make_user):
    """PostgreSQL planned send_inform's statements on every call, which took it longer
    than running them: they are prepared once per connection, and replies and follows to
    different people reuse them (no new statement per call)."""
    people = [make_user(f"p{i}") for i in range(12)]
    actor = make_user("actor")

    def prepared() -> dict:
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements")
            return dict(cursor.fetchall())

    for i, person in enumerate(people[:6]):
        send_inform(to=person, actor=actor, verb="reply", text="r", topic=f"post:{i % 2}", summary="replied")
        send_inform(to=person, actor=actor, verb="follow", text="f", summary="followed you")
    before = prepared()
    assert any(s.startswith("UPDATE inform_informstate") for s in before)
    assert any(s.startswith("INSERT INTO inform_notification") for s in before)
    for i, person in enumerate(people[6:]):
        send_inform(to=person, actor=actor, verb="reply", text="r", topic=f"post:{i % 2}", summary="replied")
        send_inform(to=person, actor=actor, verb="follow", text="f", summary="followed you")
    after = prepared()
    assert after.keys() == before.keys(), "no new statement for more of the same calls"
    assert all(after[s] > before[s] for s in before if "inform_" in s), "each one ran again, as prepared"



@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's")
def test_people_with_large_ids_reuse_the_prepared_statements(make_user):
    """psycopg types an int parameter by its size (int2, int4, int8) and keys a prepared
    statement on the types: a person with an id above 32767 must not prepare every
    statement again."""
    actor = make_user("actor")
    low, low2, high = make_user("low", id=100), make_user("low2", id=101), make_user("high", id=40000)

    def prepared() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ["%inform_%"])
            return cursor.fetchone()[0]

    send_inform(to=low, actor=actor, verb="reply", text="r", topic="post:1", summary="replied")
    before = prepared()
    send_inform(to=low2, actor=actor, verb="reply", text="r", topic="post:1", summary="replied")
    send_inform(to=high, actor=actor, verb="reply", text="r", topic="post:1", summary="replied")
    assert prepared() == before


@pytest.mark.skipif(connection.vendor != "postgresql", reason="reads PostgreSQL's plans")
def test_mutes_are_checked_per_person_not_by_reading_everyone_who_muted(pair, django_user_model):
    """send_inform's statements are prepared (generic plans): a reply's check of the
    actor's and the topic's mutes must probe the recipients' own rows, not read every
    person who muted that actor or topic (it did: a hashed subplan over all of them, per
    call, growing with the site)."""
    from django.db.backends.postgresql.base import ServerBindingCursor

    alice, bob = pair
    people = django_user_model.objects.bulk_create([django_user_model(username=f"m{i}") for i in range(1_000)])
    PersonMute.objects.bulk_create([PersonMute(user=p, muted=bob) for p in people])
    TopicPreference.objects.bulk_create([TopicPreference(user=p, topic="post:9", watch=False) for p in people])
    sql, params = selectors.recipients_query(
        [alice.pk], kind="reply", actor_id=bob.pk, topic="post:9", group=("reply:post:9", "reply:post:9"))
    with connection.cursor() as cursor:
        for table in ("mblog_user", "inform_informstate", "inform_notification", "inform_personmute",
                      "inform_topicpreference"):
            cursor.execute(f"ANALYZE {table}")
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        bound = ServerBindingCursor(connection.connection)
        bound.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in bound.fetchall())
    lines = [line.strip() for line in plan.splitlines()]
    for scan in (" on inform_personmute m ", " on inform_topicpreference t "):
        (at,) = [i for i, line in enumerate(lines) if scan in line]
        assert lines[at].startswith("->  Index") and "(user_id = u.id)" in lines[at + 1], plan
