"""Loaded by bench/stock_asgi.py when MBLOG_MEMORY_DUMP is set (bench/memory.py): on
each SIGUSR1 the server collects garbage and dumps a tracemalloc snapshot to
<MBLOG_MEMORY_DUMP>.<k> (k = 1, 2, …), then creates <…>.<k>.done."""

import gc
import itertools
import os
import signal
import tracemalloc
from pathlib import Path

_count = itertools.count(1)


def _dump(*_) -> None:
    path = f"{os.environ['MBLOG_MEMORY_DUMP']}.{next(_count)}"
    gc.collect()
    if tracemalloc.is_tracing():
        tracemalloc.take_snapshot().dump(path)
    Path(path + ".done").touch()


def install() -> None:
    signal.signal(signal.SIGUSR1, _dump)
