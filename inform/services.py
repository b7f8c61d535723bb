"""Writes of the inform app. send_inform() is the one helper everything else calls."""

import functools
import re
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from psycopg.pq import ExecStatus
from psycopg.types.numeric import Int8

from mblog.errors import ApplicationError
from realtime import ordering

from . import emails, push
from .models import (
    Delivery,
    InformState,
    Kind,
    Notification,
    PersonMute,
    SiteUpdateRead,
    TopicPreference,
    Verb,
    kind_of,
)
from .selectors import (
    counters_from_rows,
    counters_queries,
    latest_notification_id,
    recipients_from_rows,
    recipients_query,
    site_watermarks,
    stream,
    told_sql,
    unread_count,
    watchers_of,
)

User = get_user_model()
TUPLES_OK = ExecStatus.TUPLES_OK


class InformError(ApplicationError):
    """Bad arguments or ids that are not the user's: nothing was changed."""


MAX_URL_LENGTH = Notification._meta.get_field("url").max_length
TOPIC = re.compile(r"(post|room):[0-9]{1,18}")
_URL_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f\\]")


def url_is_safe(url: str) -> bool:
    """A link target that cannot run script: a path on this site (one leading slash) or an
    http(s) URL with a host. No whitespace, control characters or backslashes, which
    browsers strip or read as slashes."""
    if not url or len(url) > MAX_URL_LENGTH or _URL_UNSAFE_CHARS.search(url):
        return False
    if url.startswith("/"):
        return not url.startswith("//")
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def clean_url(url: str) -> str:
    """The notification URL as stored: empty, a site path or an http(s) URL; InformError otherwise."""
    url = (url or "").strip()
    if url and not url_is_safe(url):
        if len(url) > MAX_URL_LENGTH:
            raise InformError(f"url must be at most {MAX_URL_LENGTH} characters (got {len(url)})")
        raise InformError(
            f"url must be a path starting with a single / or an http(s):// URL, got {url[:60]!r}"
        )
    return url


def send_inform(
    *,
    verb: str,
    text: str,
    to: "User | Iterable[User] | None" = None,
    everyone: bool = False,
    url: str = "",
    actor: "User | None" = None,
    topic: str = "",
    summary: str = "",
) -> list[Notification]:
    """Store notifications and push them once the surrounding transaction commits.

    `to`: one user or several, each gets a personal notification. `everyone=True`: one
    site update, stored once, in every user's stream and pushed to every open socket.
    `topic` ("post:9", "room:3") is what it is about. `summary` ("replied to “Title”",
    "followed you"), for a kind that groups (replies, follows), groups it with the
    recipient's open group: "alice, bob and 8 more replied to “Title”" (see group_keys).

    Each person's preferences decide here, so no caller can forget them: a kind they
    turned off, a muted actor or a muted topic stores nothing for them; watchers of the
    topic are told about replies too; "by email" also sends an email after commit.
    Nobody is told about their own actions. Callable from sync code anywhere; async code
    uses asend_inform.
    """
    if verb not in Verb.values:
        raise InformError(f"unknown verb {verb!r}; known: {', '.join(Verb.values)}")
    if everyone == (to is not None):
        raise InformError("give either to=… or everyone=True")
    text = text.strip()
    if not text:
        raise InformError("text must not be empty")
    url = clean_url(url)
    if topic and not TOPIC.fullmatch(topic):
        raise InformError(f"topic is post:<id> or room:<id>, got {topic[:40]!r}")
    # savepoint=False: inside a caller's transaction the notification stands or falls
    # with it, and a savepoint would cost two more round trips per call.
    if everyone:
        with transaction.atomic(savepoint=False):
            ordering.take_turn("inform")
            n = Notification.objects.create(verb=verb, text=text[:500], url=url, actor=actor, topic=topic)
            push.notify_site_update(n)
            emails.send_site_update_after_commit(n)
            return [n]
    users = [to] if isinstance(to, User) else list(to)
    kind = kind_of(verb, topic)
    own_transaction = connection.get_autocommit() and not connection.in_atomic_block
    with transaction.atomic(savepoint=False):
        # First a new counters version for everyone this may tell, which locks their state
        # rows: a concurrent event for one of them waits here until it commits, so the open
        # groups read next are the ones it left. (Those their preferences then stop get a
        # version with unchanged counts: harmless.)
        # One round trip for both on PostgreSQL.
        ids, actor_id = [u.pk for u in users], actor.pk if actor else None
        group = group_keys(kind, topic) if summary else None
        read = recipients_query(ids, kind=kind, actor_id=actor_id, topic=topic, group=group[1:] if group else None)
        bumped, rows = _one_trip([_bump_query(ids, watchers_of(kind, topic)), read])
        if _create_missing_states(ids, bumped):  # then bumped too: read again
            rows = _one_trip([read])[0]
        told = recipients_from_rows(rows, ids, actor_id=actor_id, grouped=group is not None)
        if not told:
            return []
        rows = [
            Notification(recipient_id=r.id, verb=verb, text=text[:500], url=url, actor=actor, topic=topic)
            for r in told
        ]
        if group:
            name = actor.username if actor else ""
            for row, r in zip(rows, told, strict=True):
                row.group = r.group or group[0]
                row.actors = ([name] + [a for a in (r.group_actors or []) if a != name])[:GROUP_NAMES]
                row.count = (r.group_count or 0) + 1
                if r.group_id:
                    row.text = grouped_text(row.actors, row.count, summary)[:500]
        created, counters = _store(rows, replacing=[r.group_id for r in told if r.group_id],
                                   commit=own_transaction)
        push.notify_informs(created, counters)
        emails.send_after_commit(
            [(n, r.email) for n, r in zip(created, told, strict=True) if r.delivery == Delivery.EMAIL and r.email]
        )
        return created


asend_inform = database_sync_to_async(send_inform)

def _store(rows: list[Notification], replacing: list[int], commit: bool) -> tuple[list[Notification], dict]:
    """Delete the open group rows that `rows` replace, take the inform stream's turn
    (realtime.ordering: from the first new id to the commit), insert `rows` (setting
    their ids) and read their recipients' counters. On PostgreSQL the statements go in
    one round trip, so the turn is held for that trip and the commit only: every sender
    waits for the one that holds it. The counters are those of the commit: nothing
    changes them meanwhile, since their state rows are locked (bump_counters) and no
    other notification commits before this turn ends.

    commit=True (send_inform's own transaction): the COMMIT goes in that same trip, so the
    turn is held for nothing but the database's own work, never while this process waits
    for its GIL or runs Python. The atomic block's commit then finds nothing to commit
    (psycopg skips it) and runs the on-commit pushes as usual.

    Plain SQL, as bulk_create would write it: this runs for every notification sent, and
    building the ORM's statements cost more CPU than the database spent on them
    (docs/performance.md). Personal rows have no receipts (SiteUpdateRead) for the ORM's
    cascade to look for."""
    table = Notification._meta.db_table
    fields = [f for f in Notification._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    batch = max(1, connection.ops.bulk_batch_size(fields, rows))  # the parameter limit (SQLite)
    statements = []
    if replacing:
        statements.append((f"DELETE FROM {table} WHERE recipient_id IS NOT NULL AND id IN "
                           f"({', '.join(['%s'] * len(replacing))})", replacing))
    statements.append(ordering.turn_sql("inform"))
    inserts = range(len(statements), len(statements) + (len(rows) + batch - 1) // batch)
    for start in range(0, len(rows), batch):
        part = rows[start : start + batch]
        values = ", ".join([f"({', '.join(['%s'] * len(fields))})"] * len(part))
        params = [f.get_db_prep_save(f.pre_save(row, True), connection) for row in part for f in fields]
        statements.append((f"INSERT INTO {table} ({columns}) VALUES {values} RETURNING id", params))
    counters = counters_queries({r.recipient_id for r in rows})
    done = _one_trip(statements + counters + ([("COMMIT", [])] if commit and connection.vendor == "postgresql" else []))
    for row, (row_id,) in zip(rows, [ids for i in inserts for ids in done[i]], strict=True):
        row.id = row_id
        row._state.adding, row._state.db = False, connection.alias
    counted = done[len(statements) : len(statements) + len(counters)]
    return rows, counters_from_rows([c for counts in counted for c in counts])


# Grouping. Replies on one topic, and follows within a window, are one entry per
# recipient while it is unread: a new event deletes that row and stores the group again
# with a new id, so it moves to the top, every stream and resume point stays exact (a
# client that missed the change gets the new row on sync) and the unread count does not
# move. Clients replace the unread entry with the same `group` (docs/protocol.md).
# Mentions and site updates never group (group_keys is the one rule); a read group stays
# as it is and the next event starts a new one.
GROUP_NAMES = 3
_WINDOW_END = "9" * 10  # the highest 10-digit start


def group_keys(kind: str, topic: str) -> tuple[str, str, str] | None:
    """(the key of a new group, the lowest and the highest key of an open group the event
    joins), or None: this event does not group.

    A reply joins the one open group of its topic. A follow joins an open group started
    at most INFORM_FOLLOW_GROUP_WINDOW seconds ago: the start, 10 zero-padded epoch
    seconds, is part of the key, so a key range finds it on the index and a client never
    confuses an older, still unread follow group with the new one."""
    if kind == Kind.REPLY and topic:
        key = f"reply:{topic}"
        return key, key, key
    window = settings.INFORM_FOLLOW_GROUP_WINDOW
    if kind == Kind.FOLLOW and window > 0:
        now = int(time.time())
        return f"follow:{now:010d}", f"follow:{now - window:010d}", f"follow:{_WINDOW_END}"
    return None


def grouped_text(actors: list[str], count: int, summary: str) -> str:
    """"alice replied…", "alice and bob replied…", "alice, bob and 8 more replied…"."""
    names = [a for a in actors if a][:2] or ["someone"]
    if count <= 1:
        who = names[0]
    elif count == 2 and len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    elif len(names) == 1:
        who = f"{names[0]} and {count - 1} more"
    else:
        who = f"{names[0]}, {names[1]} and {count - 2} more"
    return f"{who} {summary}"


def notifications_push_again(notifications) -> int:
    """Push stored notifications live again (admin): sockets that missed them get them,
    sockets that have them are not sent them twice. Returns how many."""
    rows = list(notifications.select_related("actor", "recipient"))
    push.notify_informs([n for n in rows if n.recipient_id])
    for n in rows:
        if n.recipient_id is None:
            push.notify_site_update(n)
    return len(rows)


def bump_counters(user_ids: Iterable[int], watchers_of: str = "") -> None:
    """Inside the transaction that changes these people's counters (and, with
    watchers_of, the counters of that topic's watchers): a new counters version for each
    (selectors.Counters). The row locks taken here, in user id order, are held until the
    commit, so versions follow commits. Call it before touching their notification rows
    and before ordering.take_turn: writers then lock state rows first, then rows and the
    turn, and never wait for each other in a circle."""
    ids = sorted({int(i) for i in user_ids})
    (bumped,) = _one_trip([_bump_query(ids, watchers_of)])
    _create_missing_states(ids, bumped)


def _bump_query(ids: list[int], watchers_of: str) -> tuple[str, list] | None:
    """bump_counters' statement: UPDATE … RETURNING the user ids bumped. Plain SQL: it runs
    for every notification sent, and the ORM's update() cost more CPU to build than the
    database spent on it (docs/performance.md)."""
    who, params = told_sql(sorted(ids), watchers_of)
    if not who:
        return None
    table = InformState._meta.db_table
    in_order = " ORDER BY s.user_id FOR UPDATE" if connection.features.has_select_for_update else ""
    return (f"UPDATE {table} SET counters_version = counters_version + 1 WHERE user_id IN "
            f"(SELECT s.user_id FROM {table} s WHERE s.user_id IN ({who}){in_order}) RETURNING user_id"), params


def _create_missing_states(ids: list[int], bumped_rows) -> bool:
    """Users of `ids` without a state row (bulk-created) get the defaults they read as,
    then the bump and its lock. (Watchers have one: topic_set makes it.) True if any."""
    missing = set(ids) - {uid for (uid,) in bumped_rows}
    missing = set(get_user_model().objects.filter(pk__in=missing).values_list("pk", flat=True)) if missing else ()
    if missing:
        InformState.objects.bulk_create([InformState(user_id=i) for i in missing], ignore_conflicts=True)
        bump_counters(missing)
    return bool(missing)


def _one_trip(statements: "list[tuple[str, list] | None]") -> list[list]:
    """Run the statements in order, in one round trip on PostgreSQL (sent together; each
    still sees what the ones before it did); the rows of each ([] for None or a statement
    without rows)."""
    present = [st for st in statements if st is not None]
    if connection.vendor == "postgresql":
        results = _pipelined(present)
    else:
        results = []
        with connection.cursor() as cursor:
            for sql, params in present:
                cursor.execute(sql, params)
                results.append(cursor.fetchall() if cursor.description else [])
    found = iter(results)
    return [next(found) if st is not None else [] for st in statements]


def _pipelined(statements: "list[tuple[str, list]]") -> list[list]:
    """PostgreSQL: the statements in one psycopg pipeline (sent together, with the
    transaction's BEGIN, then one wait for all the results), each prepared once per
    connection: planning these statements on every call took the database more time
    than running them (docs/performance.md). Through Django's cursor wrapper, so query
    logging and execute wrappers see each statement."""
    connection.ensure_connection()
    connection.validate_thread_sharing()
    raw = connection.connection
    wrap = connection.make_debug_cursor if connection.queries_logged else connection.make_cursor
    cursors = []
    with connection.wrap_database_errors, raw.pipeline():
        for sql, params in statements:
            cursor = wrap(_preparing_cursor()(raw))
            # Every int as int8: psycopg types an int by its size, and a prepared statement
            # by its parameters' types, so a person with a larger id would prepare it again.
            cursor.execute(sql, [Int8(p) if type(p) is int else p for p in params])
            cursors.append(cursor)
    # pgresult, not description: description builds a Column object per column, per call
    return [cursor.fetchall() if cursor.pgresult.status == TUPLES_OK else [] for cursor in cursors]


@functools.cache
def _preparing_cursor():
    """A server-side binding cursor that prepares what it runs (Django turns psycopg's
    automatic preparing off for poolers that lose prepared statements; docs/scaling.md
    says what a pooler needs), but transaction control."""
    from django.db.backends.postgresql.base import ServerBindingCursor

    class PreparingCursor(ServerBindingCursor):
        def execute(self, query, params=None, *, prepare=None, binary=None):
            return super().execute(query, params, prepare=query != "COMMIT" if prepare is None else prepare,
                                   binary=binary)

    return PreparingCursor


def notifications_mark_read(user, ids: list[int]) -> int:
    """Mark these ids of the user's stream read; all or nothing. Returns the unread count."""
    ids = sorted(set(ids))
    with transaction.atomic():
        bump_counters([user.pk])
        _, read_upto = site_watermarks(user)  # as stored: another tab may have moved it
        found = dict(stream(user).filter(id__in=ids).values_list("id", "recipient_id"))
        missing = [i for i in ids if i not in found]
        if missing:
            raise InformError(f"not your notifications: {missing[:10]}", code="not_found")
        personal = [i for i, r in found.items() if r is not None]
        site = [i for i, r in found.items() if r is None and i > read_upto]
        Notification.objects.filter(id__in=personal, read_at__isnull=True).update(read_at=timezone.now())
        SiteUpdateRead.objects.bulk_create(
            [SiteUpdateRead(user=user, notification_id=i) for i in site], ignore_conflicts=True
        )
        push.notify_unread(user)
        return unread_count(user)


def notifications_mark_all_read(user) -> int:
    with transaction.atomic():
        bump_counters([user.pk])
        Notification.objects.filter(recipient=user, read_at__isnull=True).update(read_at=timezone.now())
        InformState.objects.update_or_create(user=user, defaults={"site_read_upto": latest_notification_id()})
        SiteUpdateRead.objects.filter(user=user).delete()
        push.notify_unread(user)
        return unread_count(user)


def notifications_mark_seen(user, upto: int) -> None:
    """The person opened the menu or the list showing everything up to `upto` (a resume
    point the server gave): those are no longer new (the badge), though they stay
    unread. Never moves back; every tab hears the new counters."""
    upto = int(upto)
    with transaction.atomic():
        moved = InformState.objects.filter(user=user, seen_upto__lt=upto).update(
            seen_upto=upto, counters_version=F("counters_version") + 1)
        if not moved:
            moved = upto > 0 and InformState.objects.get_or_create(
                user=user, defaults={"seen_upto": upto, "counters_version": 1})[1]
        if moved:
            push.notify_unread(user)


# --- preferences ------------------------------------------------------------------


def preferences_save(user, deliveries: dict[str, str]) -> InformState:
    """How each kind reaches the person (Kind → Delivery). Turning site updates off or on
    changes the person's stream and counters: every tab hears them."""
    unknown = [k for k, v in deliveries.items() if k not in Kind.values or v not in Delivery.values]
    if unknown:
        raise InformError(f"unknown kind or delivery: {unknown[:5]}")
    with transaction.atomic():
        state, _ = InformState.objects.select_for_update().get_or_create(user=user)
        site_update_was = state.site_update
        for kind, delivery in deliveries.items():
            setattr(state, kind, delivery)
        counters_change = (site_update_was == Delivery.OFF) != (state.site_update == Delivery.OFF)
        if counters_change:
            state.counters_version += 1  # the row is locked (select_for_update)
        state.save()
        if counters_change:
            push.notify_unread(user)
    return state


def person_mute(user, muted, on: bool = True) -> None:
    if muted.pk == user.pk:
        raise InformError("you cannot mute yourself")
    if on:
        PersonMute.objects.get_or_create(user=user, muted=muted)
    else:
        PersonMute.objects.filter(user=user, muted=muted).delete()


def topic_set(user, topic: str, state: str) -> None:
    """state: "watch" (every reply under it notifies you), "mute" (nothing about it
    does) or "" (the default: replies to you and mentions of you)."""
    if not TOPIC.fullmatch(topic or ""):
        raise InformError(f"not a topic: {topic[:40]!r}")
    if state not in ("watch", "mute", ""):
        raise InformError("state is watch, mute or empty")
    if state:
        InformState.objects.get_or_create(user=user)  # a watcher's counters are bumped through it
        TopicPreference.objects.update_or_create(user=user, topic=topic, defaults={"watch": state == "watch"})
    else:
        TopicPreference.objects.filter(user=user, topic=topic).delete()


# --- expiry ---------------------------------------------------------------------------

EXPIRE_BATCH = 2000


def notifications_expire(before) -> tuple[int, int]:
    """Delete read notifications created before `before`: personal ones that are read,
    site updates that everyone whose stream holds them has read. Unread ones stay, so
    every counter stays what it was. The newest row always stays: the highest id is
    every client's resume point (docs/reliability.md), and a lower one would make
    clients with a later cursor reset. Returns (personal, site updates) removed.

    Batches of EXPIRE_BATCH, each a short transaction that takes the stream's turn, so
    notifications keep flowing meanwhile."""
    receipt = SiteUpdateRead.objects.filter(user=OuterRef("pk"), notification_id=OuterRef(OuterRef("pk")))
    site_off = InformState.objects.filter(user=OuterRef("pk"), site_update=Delivery.OFF)
    state = InformState.objects.filter(user=OuterRef("pk"))
    unread_by_someone = (
        User.objects.annotate(
            since=Coalesce(Subquery(state.values("site_since")[:1]), 0),
            read_upto=Coalesce(Subquery(state.values("site_read_upto")[:1]), 0),
        )
        .filter(since__lt=OuterRef("pk"), read_upto__lt=OuterRef("pk"))
        .exclude(Exists(receipt))
        .exclude(Exists(site_off))
    )
    kinds = {
        "personal": Q(recipient__isnull=False, read_at__isnull=False),
        "site": Q(recipient__isnull=True) & ~Q(Exists(unread_by_someone)),
    }
    removed = {"personal": 0, "site": 0}
    for kind, condition in kinds.items():
        while True:
            with transaction.atomic():
                ordering.take_turn("inform")  # nothing commits meanwhile: the newest id is final
                newest = latest_notification_id()
                ids = list(
                    Notification.objects.filter(condition, created__lt=before, id__lt=newest)
                    .order_by("id")
                    .values_list("id", flat=True)[:EXPIRE_BATCH]
                )
                Notification.objects.filter(id__in=ids).delete()
            removed[kind] += len(ids)
            if len(ids) < EXPIRE_BATCH:
                break
    return removed["personal"], removed["site"]
