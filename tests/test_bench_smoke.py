"""The fan-out benchmark (bench/run.py) runs end to end at a tiny N.

It proves the harness works: every phase ran, the JSON has the figures the docs
quote, the chart exists and no personal push was lost. It asserts no timings.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import HEAVY_GROUP

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, HEAVY_GROUP]


def test_benchmark_runs_at_tiny_n(tmp_path):
    pg = os.environ.get("DATABASE_URL", "")
    if not pg.startswith("postgres"):
        pytest.skip("the benchmark needs PostgreSQL (run with bin/test)")
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        pytest.skip("the benchmark needs Redis (run with bin/test)")
    out = tmp_path / "bench.json"
    cmd = [
        sys.executable, str(ROOT / "bench" / "run.py"),
        "--clients", "50", "--broadcasts", "2", "--burst", "2", "--rate", "50", "--seconds", "1",
        "--push-threads", "2", "--watchers", "10", "--watch-replies", "20", "--max-seconds", "150",
        # its own database (not the pytest one) and its own results file
        "--database-url", pg.rsplit("/", 1)[0] + "/mblog_bench_smoke",
        "--redis-url", redis_url,
        "--out", str(out),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=210)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    result = json.loads(out.read_text())
    assert out.with_suffix(".png").stat().st_size > 1000
    assert result["n"] == 50
    for system in ("raw", "stock", "ours"):
        fig = result[system]
        assert set(fig) >= {"storm", "memory", "broadcast"}, system
        assert fig["storm"]["attempted"] == 50
        assert set(fig["broadcast"]) >= {"p50_ms", "p99_ms", "max_ms", "deliveries_per_s", "missing", "burst"}
        assert fig["broadcast"]["broadcasts"] == 2
        assert fig["broadcast"]["deliveries"] > 0
        assert "kb_per_connection" in fig["memory"]
    personal = result["personal"]
    assert set(personal) >= {"sent", "received", "lost", "p50_ms", "p99_ms", "rate_achieved"}
    assert personal["sent"] + personal["stopped_by_preferences"] == 50
    assert personal["stopped_by_preferences"] > 0  # the preferences really ran
    assert personal["lost"] == 0
    watchers = result["watchers"]
    assert set(watchers) >= {"seconds_sending", "inform_pushes", "p50_ms", "p99_ms", "queries_per_reply_max"}
    assert watchers["inform_pushes"] == watchers["inform_pushes_expected"] == 10 * 20
    # every watcher's socket ends with the one grouped entry, of all 20 replies
    assert watchers["sockets_exact"] == 10, watchers["sockets_wrong"]
    assert watchers["rows_per_watcher"] == 1
    assert set(result["ratios"]) >= {"broadcast_p99_ours_over_raw"}
    assert set(result["goals"]) >= {"broadcast_p99_le_2x_raw", "personal_zero_lost", "watchers_every_socket_exact"}
    assert result["goals"]["watchers_every_socket_exact"] and result["goals"]["personal_preferences_exercised"]
    assert "broadcast p99" in proc.stdout and "watchers: 20 replies" in proc.stdout  # the table


def test_fleet_benchmark_runs_at_tiny_n(tmp_path):
    """bench/fleet.py end to end: 2 daphne processes, 2 Redis servers it starts, 40
    signed-in sockets; every phase ran and lost nothing (its personal phase once failed
    every push, unnoticed)."""
    pg = os.environ.get("DATABASE_URL", "")
    if not pg.startswith("postgres"):
        pytest.skip("the benchmark needs PostgreSQL (run with bin/test)")
    out = tmp_path / "fleet.json"
    cmd = [
        sys.executable, str(ROOT / "bench" / "fleet.py"), "--procs", "2", "--clients", "40", "--redis", "2",
        "--broadcasts", "2", "--burst", "2", "--rate", "50", "--seconds", "1", "--max-seconds", "150",
        "--database-url", pg.rsplit("/", 1)[0] + "/mblog_fleet_smoke", "--out", str(out),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=210)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert out.with_suffix(".png").stat().st_size > 1000
    assert result["connect"]["ok"] == 40
    assert result["broadcast"]["deliveries"] == 80 and result["broadcast"]["missing"] == 0
    personal = result["personal"]
    assert personal["sent"] == 50 and personal["send_errors"] == 0 and personal["lost"] == 0
    assert result["storm"]["synced"] == 40 and result["storm"]["processes_alive"] == 2
    assert set(result["goals"]) >= {"broadcast_spread_le_1.5x_raw", "personal_p99_le_50ms_at_rate",
                                    "memory_le_20kb_per_socket", "storm_all_synced_within_30s"}
