"""Lint-style rules that keep the design honest."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ["mblog", "inform", "chat", "tokens", "away", "realtime"]
DOMAINS = ["mblog", "inform", "chat", "tokens", "away"]
LAYER_CALLS = re.compile(r"get_channel_layer\(|(?<!transport)\.group_send\(|\.group_add\(|\.group_discard\(|channel_layer\.send\(")


def python_files(app: str):
    return [p for p in (ROOT / app).rglob("*.py") if "migrations" not in p.parts]


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_only_the_transport_talks_to_the_channel_layer():
    offenders = [
        str(path.relative_to(ROOT))
        for app in APPS
        for path in python_files(app)
        if path.relative_to(ROOT).as_posix() != "realtime/transport.py" and LAYER_CALLS.search(path.read_text())
    ]
    assert offenders == [], f"only realtime/transport.py may talk to the channel layer: {offenders}"


def test_realtime_knows_no_domain():
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path) if m.split(".")[0] in DOMAINS)
        for path in python_files("realtime")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_only_push_modules_use_the_transport():
    """Views, consumers and services reach the layer through their app's push module."""
    offenders = [
        str(path.relative_to(ROOT))
        for app in DOMAINS
        for path in python_files(app)
        if path.name != "push.py" and "realtime.transport" in imported_modules(path)
        or path.name != "push.py" and "from realtime import transport" in path.read_text()
    ]
    assert offenders == []


def test_pinned_production_requirements():
    pins = dict(
        line.split("==", 1) for line in (ROOT / "requirements.txt").read_text().splitlines() if "==" in line
    )
    assert tuple(int(x) for x in pins["daphne"].split(".")) >= (4, 2, 2)  # oversized-frame and smuggling fixes
    assert pins["Django"].startswith("5.2.")


PUSH_CALL = re.compile(r"\bpush\.(a?notify_\w+)\(|from \.push import|from (inform|chat)\.push import (?!\w*_group)")


def test_pushes_are_made_by_services_only():
    """Views, consumers, admin actions and commands call services; services push."""
    offenders = [
        str(path.relative_to(ROOT))
        for app in DOMAINS
        for path in python_files(app)
        if path.name not in ("services.py", "push.py") and PUSH_CALL.search(path.read_text())
    ]
    assert offenders == []



def test_what_django_loaded_is_out_of_the_garbage_collectors_way():
    """Every process that sends notifications allocates thousands of objects per event;
    full collections must not walk the whole loaded project each time (mblog.apps). A
    process that has just set Django up has (nearly) nothing left for them to walk."""
    import subprocess
    import sys

    code = "import django, gc; django.setup(); print(gc.get_freeze_count(), len(gc.get_objects()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    frozen, tracked = map(int, out.stdout.split())
    assert frozen > 10 * tracked, (frozen, tracked)
