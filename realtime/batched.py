"""Database reads that many sockets make at once, made together: one trip to the database
thread and one query for a batch instead of one each.

Channels runs every `database_sync_to_async` call on one thread per process, each a
pool checkout (with its health check) and a statement for PostgreSQL to parse and plan.
In a reconnect storm every socket's `sync` is such a call: 16,000 of them cost the
processes most of a core in those trips and PostgreSQL 14 s of CPU (docs/scaling.md).
Here the calls made while one batch is being read wait for the next, and each batch is
one call of a function that takes the list of their arguments.
"""

import asyncio
import weakref

from channels.db import database_sync_to_async


class Batched:
    """`await batched(arg)` is `many([arg])[0]`, run in the database thread together with
    the other calls that came meanwhile (at most `limit` at a time)."""

    def __init__(self, many, limit: int = 200) -> None:
        self.many = many
        self.limit = limit
        self._queues: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # loop -> waiting calls

    async def __call__(self, arg):
        loop = asyncio.get_running_loop()
        waiting = self._queues.get(loop)
        if waiting is None:
            waiting = self._queues[loop] = []
            loop.create_task(self._run(waiting, loop))
        future = loop.create_future()
        waiting.append((arg, future))
        return await future

    async def _run(self, waiting: list, loop) -> None:
        try:
            while waiting:
                batch = waiting[: self.limit]
                del waiting[: self.limit]
                try:
                    results = await database_sync_to_async(self.many)([arg for arg, _ in batch])
                except Exception as exc:  # every waiting call learns why
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():  # else its caller was cancelled
                        future.set_result(result)
        finally:
            del self._queues[loop]
