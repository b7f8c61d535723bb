"""Soak: the fault matrix (tests/test_faults.py) run again and again, with the totals.

    .venv/bin/python bench/soak.py               # 20 runs (about 45 minutes here)
    .venv/bin/python bench/soak.py --runs 5 -k redis
    .venv/bin/python bench/soak.py --minutes 60  # as many of the 20 runs as start within an hour

Each run is `bin/test tests/test_faults.py` (so the same servers, settings and checks
as CI), with the property test drawing new examples every time (CI fixes them). The
figure lines each run prints ("name: sent=… received=… lost=… duplicated=…") are
summed per fault; the soak passes when every run passed and nothing was lost or
duplicated. A failed run's whole output is kept in test-artifacts/soak-<n>.log.
"""

import argparse
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURE = re.compile(r"^([\w/-]+): ((?:\w+=\S+ ?)+)$")
SUMMED = ("sent", "received", "lost", "duplicated", "dropped", "extra")


def figures(output: str) -> list[tuple[str, dict[str, int]]]:
    """The figure lines of one run (the "fault figures" section at its end)."""
    found = []
    section = output.split("fault figures", 1)[-1] if "fault figures" in output else ""
    for line in section.splitlines():
        m = FIGURE.match(line.strip())
        if m:
            numbers = {}
            for pair in m.group(2).split():
                key, value = pair.split("=", 1)
                if value.lstrip("-").isdigit():
                    numbers[key] = int(value)
            found.append((m.group(1), numbers))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("-k", default=None, help="only the fault tests matching this pytest -k expression")
    parser.add_argument("--minutes", type=float, default=None,
                        help="start no run after this many minutes (the totals cover the runs made)")
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if k != "CI"}  # the property test draws fresh examples
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    failed_runs = []
    started = time.monotonic()
    runs = 0
    for n in range(1, args.runs + 1):
        if args.minutes is not None and time.monotonic() - started > args.minutes * 60:
            print(f"--minutes {args.minutes:g} reached: no run {n}", flush=True)
            break
        runs = n
        cmd = [str(ROOT / "bin" / "test"), "tests/test_faults.py", "-q"] + (["-k", args.k] if args.k else [])
        t = time.monotonic()
        result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        output = result.stdout + result.stderr
        for name, numbers in figures(output):
            for key in SUMMED:
                if key in numbers:
                    totals[name][key] += numbers[key]
            totals[name]["runs"] += 1
        summary = output.strip().splitlines()[-1] if output.strip() else "(no output)"
        print(f"run {n}/{args.runs}: exit {result.returncode} in {time.monotonic() - t:.0f}s: {summary}", flush=True)
        if result.returncode != 0:
            failed_runs.append(n)
            log = ROOT / "test-artifacts" / f"soak-{n}.log"
            log.parent.mkdir(exist_ok=True)
            log.write_text(output)
            print(f"  output kept in {log}", flush=True)

    print(f"\nsoak: {runs} runs in {(time.monotonic() - started) / 60:.1f} min, failed runs: {failed_runs or 'none'}")
    lost = duplicated = 0
    for name in sorted(totals):
        t = totals[name]
        print(f"  {name}: " + " ".join(f"{k}={t[k]}" for k in ("runs", *SUMMED) if k in t))
        lost += t.get("lost", 0)
        duplicated += t.get("duplicated", 0)
    print(f"soak total: lost={lost} duplicated={duplicated}")
    return 0 if not failed_runs and lost == 0 and duplicated == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
