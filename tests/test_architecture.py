"""Lint-style rules that keep the design honest."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ["mblog", "inform", "chat"]
LAYER_CALLS = re.compile(r"get_channel_layer\(|\.group_send\(|\.group_add\(|\.group_discard\(|channel_layer\.send\(")


def test_only_the_push_gateway_talks_to_the_channel_layer():
    offenders = [
        str(path.relative_to(ROOT))
        for app in APPS
        for path in (ROOT / app).rglob("*.py")
        if path.relative_to(ROOT).as_posix() != "inform/push.py" and LAYER_CALLS.search(path.read_text())
    ]
    assert offenders == [], f"only inform/push.py may talk to the channel layer: {offenders}"


def test_pinned_production_requirements():
    pins = dict(
        line.split("==", 1) for line in (ROOT / "requirements.txt").read_text().splitlines() if "==" in line
    )
    assert tuple(int(x) for x in pins["daphne"].split(".")) >= (4, 2, 2)  # oversized-frame and smuggling fixes
    assert pins["Django"].startswith("5.2.")
