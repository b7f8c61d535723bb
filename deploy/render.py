#!/usr/bin/env python3
"""Render deploy/templates/ with a values file: python3 deploy/render.py VALUES OUT_DIR

Every {{NAME}} in a template is replaced by NAME from VALUES (KEY=VALUE lines, see
deploy/values.example); a placeholder without a value is an error, so nothing half-filled
reaches a server. OUT_DIR gets the same layout as deploy/templates/:

  nginx/mblog.conf                 -> /etc/nginx/sites-available/mblog.conf
  supervisor/mblog.conf            -> /etc/supervisor/conf.d/mblog.conf
  systemd/mblog-daphne@.service    -> /etc/systemd/system/  (instead of supervisor)
  nginx/mblog-main.conf            -> /etc/nginx/modules-enabled/90-mblog.conf
  tmpfiles.d/mblog.conf            -> /etc/tmpfiles.d/mblog.conf
  logrotate.d/mblog                -> /etc/logrotate.d/mblog
  mblog.env                        -> ENV_FILE (only once: it holds the secret key)
  systemd/mblog-watch.service      -> /etc/systemd/system/  (the health watcher, with systemd)
  bin/mblog-manage, bin/mblog-release, bin/mblog-rolling-restart, … -> /usr/local/bin/

Computed values: VENV (APP_DIR/venv: each release links its own), DAPHNE_UPSTREAMS
(nginx server lines, one per process), STOP_WAIT_SECONDS (DRAIN_SECONDS + 15),
NGINX_WORKER_CONNECTIONS (3/4 of MAX_OPEN_FILES), METRICS_LOCATIONS (nginx locations
/metrics/N, one per process) and SECRET_KEY when left empty (a fresh random key).
Defaults when absent: MAX_OPEN_FILES=65536, WS_CONN_PER_ADDRESS=256,
WS_MAX_MESSAGE_BYTES=32768, FAIL_TIMEOUT=5, DRAIN_SECONDS=5, NGINX_PID=/run/nginx.pid,
SUPERVISORCTL=supervisorctl, HEALTH_INTERVAL=10, HEALTH_TIMEOUT=5, HEALTH_FAILURES=3,
START_WAIT=30, RELEASES_DIR and VENVS_DIR (releases/ and venvs/ next to APP_DIR),
PYTHON=/usr/bin/python3, PROCESS_MANAGER=supervisor, METRICS_LISTEN=127.0.0.1:9101,
METRICS_ALLOW=127.0.0.1/32. Standard library only.
"""

import os
import re
import secrets
import stat
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mblog.envfile import EnvFileError, parse  # noqa: E402  (the one KEY=VALUE parser, mblog/envfile.py)

TEMPLATES = Path(__file__).resolve().parent / "templates"
PLACEHOLDER = re.compile(r"\{\{([A-Z][A-Z0-9_]*)\}\}")
# Lines between "; for each process N" and "; end for each process" (or with "#") are
# written once per daphne process, {{N}} being 0 … PROCESSES-1.
EACH_PROCESS = re.compile(r"(?ms)^[;#] for each process N\n(.*?)^[;#] end for each process\n")
SECRET_FILES = {"mblog.env"}


def compute(values: dict[str, str]) -> dict[str, str]:
    values = dict(values)
    try:
        processes = int(values["PROCESSES"])
        ping, read_timeout = float(values["PING_INTERVAL"]), float(values["PROXY_READ_TIMEOUT"])
    except (KeyError, ValueError) as exc:
        raise SystemExit(f"render: PROCESSES, PING_INTERVAL and PROXY_READ_TIMEOUT must be numbers ({exc})") from None
    if processes < 1:
        raise SystemExit("render: PROCESSES must be at least 1")
    if read_timeout <= ping:
        raise SystemExit(
            f"render: PROXY_READ_TIMEOUT ({read_timeout:g}) must be longer than PING_INTERVAL ({ping:g}), "
            "or nginx drops idle WebSockets between daphne's pings"
        )
    run_dir = values.get("RUN_DIR", "").rstrip("/")
    # APP_DIR is the `current` link to a release (bin/mblog-release); each release holds its
    # own venv (a link to one built from its requirements.lock)
    app_dir = values.get("APP_DIR", "").rstrip("/")
    if values.setdefault("VENV", f"{app_dir}/venv") != f"{app_dir}/venv":
        raise SystemExit(f"render: VENV must be APP_DIR/venv ({app_dir}/venv): every release links its own there")
    if values.get("PROCESS_MANAGER", "supervisor") not in ("supervisor", "systemd"):
        raise SystemExit("render: PROCESS_MANAGER is supervisor or systemd")
    home = os.path.dirname(app_dir)
    values.setdefault("RELEASES_DIR", f"{home}/releases")
    values.setdefault("VENVS_DIR", f"{home}/venvs")
    values.setdefault("PYTHON", "/usr/bin/python3")
    values.setdefault("PROCESS_MANAGER", "supervisor")
    values.setdefault("START_WAIT", "30")
    values.setdefault("FAIL_TIMEOUT", "5")
    values.setdefault("DRAIN_SECONDS", "5")
    try:
        fail_timeout, drain = int(values["FAIL_TIMEOUT"]), float(values["DRAIN_SECONDS"])
    except ValueError as exc:
        raise SystemExit(f"render: FAIL_TIMEOUT and DRAIN_SECONDS must be numbers ({exc})") from None
    values["DAPHNE_UPSTREAMS"] = "\n    ".join(
        f"server unix:{run_dir}/daphne-{i}.sock max_fails=1 fail_timeout={fail_timeout}s;" for i in range(processes)
    )
    # the drain (DRAIN_SECONDS) plus up to 10 s for the requests in flight, and a margin
    values["STOP_WAIT_SECONDS"] = str(int(drain) + 15)
    values["METRICS_LOCATIONS"] = "\n    ".join(
        f"location = /metrics/{i} {{ proxy_pass http://unix:{run_dir}/daphne-{i}.sock:/metrics; }}"
        for i in range(processes)
    )
    values.setdefault("METRICS_LISTEN", "127.0.0.1:9101")
    values.setdefault("METRICS_ALLOW", "127.0.0.1/32")
    values.setdefault("MAX_OPEN_FILES", "65536")
    values.setdefault("NGINX_PID", "/run/nginx.pid")
    values.setdefault("SUPERVISORCTL", "supervisorctl")
    values.setdefault("HEALTH_INTERVAL", "10")
    values.setdefault("HEALTH_TIMEOUT", "5")
    values.setdefault("HEALTH_FAILURES", "3")
    # a quarter of the files left for nginx's own (logs, listening sockets, upstream spares)
    values["NGINX_WORKER_CONNECTIONS"] = str(int(values["MAX_OPEN_FILES"]) * 3 // 4)
    values.setdefault("WS_CONN_PER_ADDRESS", "256")
    values.setdefault("WS_MAX_MESSAGE_BYTES", "32768")  # 4 bytes for each of WS_MAX_FRAME_CHARS (8192)
    if not values.get("SECRET_KEY"):
        values["SECRET_KEY"] = secrets.token_urlsafe(50)
    return values


def render_text(text: str, values: dict[str, str], name: str) -> str:
    text = EACH_PROCESS.sub(
        lambda m: "".join(m.group(1).replace("{{N}}", str(i)) for i in range(int(values["PROCESSES"]))), text
    )
    missing = sorted({m for m in PLACEHOLDER.findall(text) if m not in values})
    if missing:
        raise SystemExit(f"render: {name} needs a value for: {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def render(values: dict[str, str], out_dir: Path) -> list[Path]:
    values = compute(values)
    written = []
    for src in sorted(p for p in TEMPLATES.rglob("*") if p.is_file()):
        rel = src.relative_to(TEMPLATES)
        dst = out_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        text = render_text(src.read_text(), values, str(rel))
        if rel.as_posix() in SECRET_FILES:
            # 0600 from the first byte: created so, or narrowed before it is rewritten.
            fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
            with os.fdopen(fd, "w") as f:
                os.fchmod(fd, 0o600)
                f.write(text)
        else:
            dst.write_text(text)
            os.chmod(dst, 0o755 if rel.parts[0] == "bin" else stat.S_IMODE(src.stat().st_mode))
        written.append(dst)
    return written


def main(argv: list[str]) -> None:
    if len(argv) != 3:
        raise SystemExit(__doc__)
    try:
        values = parse(argv[1])
    except (OSError, EnvFileError) as exc:
        raise SystemExit(f"render: {exc}") from None
    for path in render(values, Path(argv[2])):
        print(path)


if __name__ == "__main__":
    main(sys.argv)
