"""The locks (requirements.lock, requirements-dev.lock; pip-compile --generate-hashes)
pin every package with hashes and agree with requirements*.txt, which people edit.
realtime/wire.py relies on private attributes of autobahn, Twisted and txaio: those, and
daphne, must be pinned, and the running environment must be the locked one."""

import re
from importlib.metadata import version

import pytest

from .conftest import ROOT

WIRE_PACKAGES = ["autobahn", "twisted", "txaio", "daphne"]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock(path: str) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes)."""
    entries: dict[str, list] = {}
    current = None
    for line in (ROOT / path).read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if m:
            current = entries[norm(m.group(1))] = [m.group(2), 0]
        elif line.strip().startswith("--hash=sha256:") and current is not None:
            current[1] += 1
    return {k: (v, n) for k, (v, n) in entries.items()}


def requirements(path: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            pins.update(requirements(line[3:].strip()))
        elif line:
            name, _, pinned = line.partition("==")
            assert pinned, f"{path}: {line!r} is not pinned with =="
            pins[norm(re.sub(r"\[.*\]", "", name))] = pinned
    return pins


@pytest.mark.parametrize("source, locked", [("requirements.txt", "requirements.lock"),
                                            ("requirements-dev.txt", "requirements-dev.lock")])
def test_the_lock_covers_every_requirement_at_its_version_with_hashes(source, locked):
    entries = lock(locked)
    wanted = requirements(source)
    assert {name: entries.get(name, (None,))[0] for name in wanted} == wanted, f"regenerate {locked} (README)"
    assert not [name for name, (_, hashes) in entries.items() if hashes == 0]


def test_both_locks_pin_shared_packages_alike_and_the_wire_packages_are_locked():
    prod, dev = lock("requirements.lock"), lock("requirements-dev.lock")
    assert {n: dev.get(n, (None,))[0] for n in prod} == {n: v for n, (v, _) in prod.items()}
    for name in WIRE_PACKAGES:
        assert name in prod, f"{name} must be pinned in requirements.lock (realtime/wire.py)"


def test_the_running_environment_is_the_locked_one_for_the_wire_packages():
    locked = lock("requirements-dev.lock")
    assert {n: version(n) for n in WIRE_PACKAGES} == {n: locked[n][0] for n in WIRE_PACKAGES}
