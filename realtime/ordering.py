"""Commit-ordered ids for resumable streams.

A stream's readers resume from an id ("everything after 120"), but a database hands out
ids when a row is inserted, not when it commits: with PostgreSQL, a row with a lower id
can commit after a higher one, and a reader that already moved past the higher id would
never see it. Writers of one stream therefore take turns from insert to commit: the
transaction holds an advisory lock until it ends, so within a stream ids are commit
order, and "the highest committed id" is an exact resume point. SQLite writers take
turns anyway (one write transaction at a time).
"""

import zlib

from django.db import connection


def take_turn(stream: str, key: int = 0) -> None:
    """Call inside transaction.atomic(), before inserting rows of the stream (stream,
    key); holds until the transaction commits or rolls back."""
    statement = turn_sql(stream, key)
    if statement is not None:
        with connection.cursor() as cursor:
            cursor.execute(*statement)


def turn_sql(stream: str, key: int = 0) -> tuple[str, list] | None:
    """take_turn as a statement and its parameters (None where writers take turns
    anyway), for a caller that sends it together with its inserts (one round trip)."""
    if not connection.in_atomic_block:
        raise RuntimeError("take_turn() must run inside transaction.atomic()")
    if connection.vendor != "postgresql":
        return None
    namespace = zlib.crc32(stream.encode()) - 2**31  # PostgreSQL's int4 range
    # the (int4, int4) form: a caller may send its parameters as int8
    return "SELECT pg_advisory_xact_lock(%s::integer, %s::integer)", [namespace, int(key) % 2**31]
