"""Reads of the inform stream. A user's stream: their own notifications and the site
updates published after they joined, ordered by id."""

import json
from collections.abc import Iterable
from typing import NamedTuple

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Exists, Max, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from .models import Delivery, InformState, Kind, Notification, PersonMute, SiteUpdateRead, TopicPreference

UNREAD_COUNTS_BATCH = 500  # users per query (SQLite caps the parameters of one statement)


def latest_notification_id() -> int:
    """The highest committed id: an exact resume point, since ids are commit order
    (realtime.ordering)."""
    return Notification.objects.aggregate(m=Max("id"))["m"] or 0


def stream(user) -> QuerySet[Notification]:
    """Site updates published after the person joined, unless they turned them off (no
    state row: all of them). The state is read by subqueries the database evaluates
    once, so the id range still uses the inform_site_updates index."""
    state = InformState.objects.filter(user=user)
    since = Coalesce(Subquery(state.values("site_since")[:1]), Value(0))
    site_off = state.filter(site_update=Delivery.OFF)
    return Notification.objects.filter(Q(recipient=user) | Q(Q(recipient__isnull=True, id__gt=since), ~Exists(site_off)))


def stream_with_read_state(user) -> QuerySet[Notification]:
    """The stream with `site_read` annotated (a site update under the read watermark, or
    with a receipt); use is_read(user, n) on each row."""
    receipts = SiteUpdateRead.objects.filter(user=user, notification=OuterRef("pk"))
    under_watermark = InformState.objects.filter(user=user, site_read_upto__gte=OuterRef("pk"))
    return stream(user).select_related("actor").annotate(site_read=Exists(receipts) | Exists(under_watermark))


def is_read(user, n: Notification) -> bool:
    if n.recipient_id is not None:
        return n.read_at is not None
    return n.site_read


def site_watermarks(user) -> tuple[int, int]:
    """(site_since, site_read_upto) as stored (0, 0 without a state row)."""
    return InformState.objects.filter(user=user).values_list("site_since", "site_read_upto").first() or (0, 0)


def site_updates_off(user) -> bool:
    return InformState.objects.filter(user=user, site_update=Delivery.OFF).exists()


def preferences(user) -> InformState:
    """The person's state, or the defaults (unsaved) when they never changed anything."""
    return InformState.objects.filter(user=user).first() or InformState(user=user)


def mutes(user) -> tuple[list, list[TopicPreference]]:
    """Muted people (users) and the watched or muted topics, for the settings page."""
    people = [m.muted for m in PersonMute.objects.filter(user=user).select_related("muted").order_by("muted__username")]
    return people, list(TopicPreference.objects.filter(user=user).order_by("topic"))


class Counters(NamedTuple):
    """unread: not opened or marked read; unseen: the unread ones newer than the last
    time the person opened the menu or the list (what the badge shows).

    version: (the person's InformState.counters_version, the newest notification id),
    read in the same statement as the counts. Every change of the counts commits a new
    version (a site update: a new id; the newest row is never deleted), and a later read
    sees a version at least as high in both parts, so of two readings the one with the
    higher version, compared as pairs, is the newer: clients keep it whatever order the
    pushes of two senders arrive in. A site update with an id at or below the second
    part is counted in them already."""

    unread: int = 0
    unseen: int = 0
    version: tuple[int, int] = (0, 0)


def unread_count(user) -> int:
    """The user's unread count, with the read watermark as stored (not the caller's copy)."""
    return counters(user).unread


def counters(user) -> Counters:
    """The user's counters (one query), from the stored watermarks."""
    return counters_of([user.pk]).get(user.pk, Counters())


def counters_of(user_ids: Iterable[int]) -> dict[int, Counters]:
    """Counters of these users, one query per UNREAD_COUNTS_BATCH of them. The personal
    halves are served by the partial index inform_unread, the site-update halves by
    inform_site_updates.

    Plain SQL because it runs for every pushed notification: the ORM spent more CPU
    building the equivalent query than the database spent answering it
    (docs/performance.md)."""
    result: dict[int, Counters] = {}
    with connection.cursor() as cursor:
        for sql, params in counters_queries(user_ids):
            cursor.execute(sql, params)
            result.update(counters_from_rows(cursor.fetchall()))
    return result


def counters_queries(user_ids: Iterable[int], extra_columns: str = "") -> list[tuple[str, list]]:
    """The statements of counters_of (sql, params), one per UNREAD_COUNTS_BATCH users;
    counters_from_rows reads their rows (without extra_columns)."""
    ids = [int(i) for i in user_ids]
    return [(_counters_sql(len(ids[i : i + UNREAD_COUNTS_BATCH]), extra_columns), ids[i : i + UNREAD_COUNTS_BATCH])
            for i in range(0, len(ids), UNREAD_COUNTS_BATCH)]


def counters_from_rows(rows) -> dict[int, Counters]:
    return {uid: Counters(unread, unseen, (version, newest)) for uid, unread, unseen, version, newest in rows}


def _counters_sql(n_users: int, extra_columns: str = "") -> str:
    """SELECT u.id, unread, unseen, counters version, newest notification id
    [, extra_columns] for n_users ids (parameters)."""
    User = get_user_model()
    greatest = "GREATEST" if connection.vendor == "postgresql" else "MAX"
    notifications, receipts = Notification._meta.db_table, SiteUpdateRead._meta.db_table
    site_unread = f"""(SELECT COUNT(*) FROM {notifications} s
                WHERE s.recipient_id IS NULL AND COALESCE(st.site_update, 'site') <> 'off'
                  AND s.id > {greatest}(COALESCE(st.site_since, 0), COALESCE(st.site_read_upto, 0){{seen}})
                  AND NOT EXISTS (SELECT 1 FROM {receipts} r
                                  WHERE r.user_id = u.id AND r.notification_id = s.id))"""
    return f"""
        SELECT u.id,
          (SELECT COUNT(*) FROM {notifications} n
            WHERE n.recipient_id = u.id AND n.read_at IS NULL)
          + {site_unread.format(seen="")},
          (SELECT COUNT(*) FROM {notifications} n
            WHERE n.recipient_id = u.id AND n.read_at IS NULL AND n.id > COALESCE(st.seen_upto, 0))
          + {site_unread.format(seen=", COALESCE(st.seen_upto, 0)")},
          COALESCE(st.counters_version, 0),
          (SELECT COALESCE(MAX(s.id), 0) FROM {notifications} s)
          {extra_columns}
        FROM {User._meta.db_table} u LEFT JOIN {InformState._meta.db_table} st ON st.user_id = u.id
        WHERE u.id IN ({", ".join(["%s"] * n_users)})
    """


class SyncState(NamedTuple):
    """What a socket's `sync` needs besides the rows, read in one statement (one
    snapshot): the resume point, the counters, and whether site updates are off."""

    upto: int
    counters: Counters
    site_updates_off: bool


def sync_states(user_ids: Iterable[int]) -> dict[int, SyncState]:
    """sync_state of these users, one query per UNREAD_COUNTS_BATCH of them; a user whose
    row is gone is left out."""
    off = f"COALESCE(st.site_update = '{Delivery.OFF.value}', FALSE)"
    result: dict[int, SyncState] = {}
    with connection.cursor() as cursor:
        for sql, params in counters_queries(set(user_ids), f", {off}"):
            cursor.execute(sql, params)
            for uid, unread, unseen, version, upto, site_off in cursor.fetchall():
                result[uid] = SyncState(upto, Counters(unread, unseen, (version, upto)), bool(site_off))
    return result


def sync_state(user) -> SyncState:
    """One query: a reconnect storm's sync with nothing new costs only this."""
    state = sync_states([user.pk]).get(user.pk)
    if state is None:  # the user row is gone (deleted meanwhile): nothing of theirs to count
        return SyncState(latest_notification_id(), Counters(), False)
    return state


def sync_start(user, after: int, limit: int) -> tuple[SyncState, list[Notification]]:
    """The state, then the first page of the stream after `after` up to the state's
    resume point: one trip to the database thread, one query when nothing is new."""
    return sync_starts([(user, after, limit)])[0]


def sync_starts(requests: list[tuple]) -> list[tuple[SyncState, list[Notification]]]:
    """sync_start for many (user, after, limit) at once, as the sockets of a reconnect
    storm ask (realtime.batched): one query for all their states when nothing is new."""
    states = sync_states(user.pk for user, _, _ in requests)
    # A user deleted meanwhile has no state: nothing of theirs to count.
    answers = [states.get(user.pk) or SyncState(latest_notification_id(), Counters(), False) for user, _, _ in requests]
    pages = pages_between([(user.pk, after, state.upto, limit)
                           for (user, after, limit), state in zip(requests, answers, strict=True)])
    return list(zip(answers, pages, strict=True))


PAGES_PER_QUERY = 50


def pages_between(requests: list[tuple[int, int, int, int]]) -> list[list[Notification]]:
    """notifications_between for many (user id, after, upto, limit) at once: one query per
    PAGES_PER_QUERY of those with something to read, each row with its actor (only the
    id and username). Plain SQL: a reconnect storm where every socket missed something
    spent 43 % of each process's CPU building the ORM's query for each (docs/scaling.md)."""
    pages: list[list[Notification]] = [[] for _ in requests]
    wanted = [(i, r) for i, r in enumerate(requests) if r[1] < r[2]]
    q = connection.ops.quote_name
    n_table, states = Notification._meta.db_table, InformState._meta.db_table
    columns = ", ".join(f"n.{q(f.column)}" for f in Notification._meta.concrete_fields)
    one = f"""SELECT * FROM (
        SELECT %s AS request, {columns}, a.{q("username")} AS actor_name
        FROM {n_table} n LEFT JOIN {get_user_model()._meta.db_table} a ON a.id = n.actor_id
        WHERE (n.recipient_id = %s OR (n.id > COALESCE((SELECT s.site_since FROM {states} s WHERE s.user_id = %s), 0)
               AND n.recipient_id IS NULL
               AND NOT EXISTS (SELECT 1 FROM {states} s WHERE s.user_id = %s AND s.site_update = %s)))
          AND n.id > %s AND n.id <= %s
        ORDER BY n.id LIMIT %s) p{{k}}"""
    User = get_user_model()
    for start in range(0, len(wanted), PAGES_PER_QUERY):
        part = wanted[start : start + PAGES_PER_QUERY]
        sql = " UNION ALL ".join(one.format(k=k) for k in range(len(part)))
        params = [p for i, (uid, after, upto, limit) in part
                  for p in (i, uid, uid, uid, Delivery.OFF.value, after, upto, limit)]
        for n in Notification.objects.raw(sql, params):
            if n.actor_id is not None:
                n._state.fields_cache["actor"] = User(id=n.actor_id, username=n.actor_name)
            pages[n.request].append(n)
    for page in pages:
        page.sort(key=lambda n: n.id)
    return pages


def unread_counts(user_ids: Iterable[int]) -> dict[int, int]:
    return {uid: c.unread for uid, c in counters_of(user_ids).items()}


class Recipient(NamedTuple):
    id: int
    email: str
    delivery: str  # Delivery.SITE or Delivery.EMAIL
    group_id: int | None = None  # their open (unread) row of the group, if any
    group: str = ""  # its key
    group_count: int = 0
    group_actors: list | None = None


def watchers_of(kind: str, topic: str) -> str:
    """The topic whose watchers are told too: replies only."""
    return topic if topic and kind == Kind.REPLY else ""


def told_sql(user_ids: list[int], watched: str = "") -> tuple[str, list]:
    """(SELECT of user ids, its parameters): these users, and whoever watches `watched`;
    ("", []) for nobody. One set, so that the database looks them up by index: with
    "u.id IN (…) OR u.id IN (watchers)" PostgreSQL scanned every user, state row and
    notification for each reply."""
    parts, params = [], []
    if user_ids:
        users = get_user_model()._meta.db_table
        parts.append(f"SELECT v.id FROM {users} v WHERE v.id IN ({', '.join(['%s'] * len(user_ids))})")
        params += user_ids
    if watched:
        parts.append(f"SELECT w.user_id FROM {TopicPreference._meta.db_table} w WHERE w.topic = %s AND w.watch")
        params.append(watched)
    return " UNION ".join(parts), params


def recipients_query(
    ids: list[int], *, kind: str, actor_id: int | None, topic: str, group: tuple[str, str] | None = None
) -> tuple[str, list] | None:
    """Who of these users is to be told about something of this kind, by this actor, on
    this topic, and how; plus, for replies, whoever watches the topic; with `group` (the
    lowest and highest key, services.group_keys), each one's newest unread row with a
    key in that range: one statement (sql, params), None for nobody, whose rows
    recipients_from_rows reads (in the order given, watchers after). send_inform sends it
    together with its version bump. Plain SQL: this runs for every notification sent,
    and building it with the ORM cost more CPU than the database spent on it
    (docs/performance.md)."""
    if kind not in Kind.values:
        raise ValueError(f"unknown kind {kind!r}")
    q = connection.ops.quote_name
    notifications, states = Notification._meta.db_table, InformState._meta.db_table
    topics, mutes = TopicPreference._meta.db_table, PersonMute._meta.db_table
    # muted: the actor, or the topic; 0 = 1 is false on every database. Each is a join on
    # its unique key (one row at most), so each person is one index probe: as EXISTS,
    # PostgreSQL read every mute of the actor and every preference of the topic for
    # every call (a hashed subplan), which grows with the site.
    muted, joins, join_params = ["0 = 1"], [f"LEFT JOIN {states} st ON st.user_id = u.id"], []
    if actor_id:
        joins.append(f"LEFT JOIN {mutes} m ON m.user_id = u.id AND m.muted_id = %s")
        join_params.append(int(actor_id))
        muted.append("m.user_id IS NOT NULL")
    if topic:
        joins.append(f"LEFT JOIN {topics} t ON t.user_id = u.id AND t.topic = %s AND NOT t.watch")
        join_params.append(topic)
        muted.append("t.user_id IS NOT NULL")
    columns = f"u.id, u.email, COALESCE(st.{q(kind)}, %s), {' OR '.join(muted)}"
    params: list = [Delivery.SITE.value]
    joins = "\n            ".join(joins)
    if group:
        # the newest open row of the group: one indexed lookup (inform_open_groups) per person
        columns += f", g.id, g.{q('group')}, g.count, g.actors"
        joins += f"""
            LEFT JOIN {notifications} g ON g.id = (
                SELECT o.id FROM {notifications} o
                WHERE o.recipient_id = u.id AND o.read_at IS NULL AND o.{q('group')} BETWEEN %s AND %s
                ORDER BY o.id DESC LIMIT 1)"""
    who, who_params = told_sql(ids, watchers_of(kind, topic))
    if not who:
        return None
    return (f"SELECT {columns} FROM {get_user_model()._meta.db_table} u {joins} WHERE u.id IN ({who})",
            params + join_params + (list(group) if group else []) + who_params)


def recipients_from_rows(rows, ids: list[int], *, actor_id: int | None, grouped: bool) -> list[Recipient]:
    found = {
        row[0]: Recipient(
            row[0], row[1], row[2], *row[4:7], json.loads(row[7]) if isinstance(row[7], str) else row[7]
        ) if grouped else Recipient(row[0], row[1], row[2])
        for row in rows
        if row[2] != Delivery.OFF and not row[3] and row[0] != actor_id
    }
    order = {pk: i for i, pk in enumerate(dict.fromkeys(ids))}
    return sorted(found.values(), key=lambda r: (order.get(r.id, len(order)), r.id))


def notifications_between(user, after: int, upto: int, limit: int) -> list[Notification]:
    """The user's notifications with after < id <= upto, oldest first, at most limit."""
    rows = stream(user).select_related("actor").filter(id__gt=after, id__lte=upto).order_by("id")
    return list(rows[:limit])


def notifications_after(user, after: int, limit: int) -> list[Notification]:
    """The user's notifications with id > after, oldest first, at most limit."""
    return list(stream(user).select_related("actor").filter(id__gt=after).order_by("id")[:limit])


def last_id_before(user, when) -> int:
    """The newest id of the user's stream created before `when` (0 if none)."""
    return stream(user).filter(created__lt=when).aggregate(m=Max("id"))["m"] or 0


def menu_items(user, limit: int = 8) -> list[Notification]:
    """The header menu: the newest unread, then the newest read, at most limit in all;
    each with `is_read` set (two queries)."""
    rows = stream_with_read_state(user)
    unread_q = Q(recipient__isnull=False, read_at__isnull=True) | Q(recipient__isnull=True, site_read=False)
    unread = list(rows.filter(unread_q).order_by("-id")[:limit])
    shown = {n.id for n in unread}
    latest = [n for n in rows.order_by("-id")[:limit] if n.id not in shown]
    for n in unread:
        n.is_read = False
    for n in latest:  # unread ones here only when `unread` is full already
        n.is_read = is_read(user, n)
    return (unread + [n for n in latest if n.is_read])[:limit]
