"""The files in deploy/, proven, and docs/deploy.md run as written: every shell block of
the guide marked `sh test:NAME` is run by this file (bash -e, the guide's paths replaced
by this test's, Deployment.guide_paths; supervisorctl, nginx, curl and editor stand-ins first on
PATH), in the guide's order, and test_every_block_of_the_guide_ran fails if one was not.
So the site is set up from the guide: a release of the code under test (a git repository
made from the working tree, cloned), two daphne processes under supervisord (Debian's
supervisord.conf, paths redirected), nginx in front (Debian's nginx.conf, its include
folders redirected), TLS, PostgreSQL (a database of our own) and Redis (a channel-layer
prefix of our own).

Checked: `nginx -t` on the shipped site; HTTP→HTTPS redirect; static files served by
nginx; /healthz through nginx and on each daphne socket; sign-in over HTTPS with CSRF;
WebSockets through nginx reaching both daphne processes (told apart by their access
logs, which show the real client address:port nginx forwards, not a spoofed one);
`send_inform` from outside arrives on both; kill -9 of one daphne: supervisor restarts
it, the client reconnects and `sync` returns what was sent while it was down; an idle
socket outlives nginx's read timeout thanks to daphne's pings; scaling 2 -> 3 -> 2 and a
rolling restart with deploy's own script; an upgrade (git pull, mblog-release install),
a rollback, a release that fails `check` and one whose daphne cannot start (both leave
the old release serving); all of these probed all along (0 failed requests, 0 failed
reconnects, sockets closed with 1001, nothing lost or shown twice); 10,000 connections
held through nginx; unknown Host headers never reach daphne; the watcher restarts a hung
daphne; the systemd units verify; hashed static names, gzipped and cached; log rotation
and no [crit]; a backup restored into an empty database and over the live one; teardown
leaves no process running.

Run as root (as bin/test does): daphne and manage.py run as `nobody` and nginx's
workers as `www-data`, so the ownerships and modes in the shipped files are exercised.
"""

import grp
import gzip
import http.client
import json
import os
import pwd
import queue
import re
import resource
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import websocket

from tests.conftest import ARTIFACTS, HEAVY_GROUP, ROOT, free_port, wait_until

pytestmark = [pytest.mark.slow, HEAVY_GROUP]

SERVER_NAME = "mblog.test"
# The shipped default is 65536; a container may not allow raising the hard limit that far.
MAX_OPEN_FILES = min(65536, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
ORIGIN = f"https://{SERVER_NAME}"
PROCESSES = 2
PING_INTERVAL = 1  # short, so that a socket idle for PROXY_READ_TIMEOUT proves the pings keep it open
PROXY_READ_TIMEOUT = 3
DEMO_PASSWORD = "demo-pass-123"
CLEAN_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
NGINX = "/usr/sbin/nginx"
  # Debian's package (not always on a non-root PATH)


GUIDE = ROOT / "docs" / "deploy.md"
GUIDE_RAN: set[str] = set()  # the guide's test:NAME blocks this run has run


def guide_blocks() -> dict[str, str]:
    """docs/deploy.md's shell blocks marked `sh test:NAME`, by name. Every shell block must
    be marked either so or `sh untested` (what a test machine cannot run)."""
    text = GUIDE.read_text()
    languages = set(re.findall(r"(?m)^```(\w+)", text))
    assert languages <= {"sh"}, f"docs/deploy.md: code blocks in {languages - {'sh'}}: mark them sh test:NAME or sh untested"
    blocks, unmarked = {}, []
    for m in re.finditer(r"(?ms)^```sh([^\n]*)\n(.*?)^```$", text):
        tag, body = m.group(1).strip(), m.group(2)
        if tag.startswith("test:"):
            assert tag[5:] not in blocks, f"docs/deploy.md: two blocks named {tag}"
            blocks[tag[5:]] = body
        elif tag != "untested":
            unmarked.append(body.splitlines()[0])
    assert not unmarked, f"docs/deploy.md: shell blocks marked neither test:NAME nor untested: {unmarked}"
    return blocks


GUIDE_BLOCKS = guide_blocks()


def default_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))


def run(cmd, check=True, timeout=60, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} exited {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}")
    return result


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not running
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line mentions text (our temp dir): what must be gone at the end."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline and pid_alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def children_of(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().split(")")[-1].split()[1]) == pid:
                    kids.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return kids


class Deployment:
    """Renders deploy/ with test values, installs, starts, and undoes all of it."""

    def __init__(self):
        self.pid = os.getpid()
        pg_url = os.environ.get("TEST_PG_URL") or os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/x"
        if not pg_url.startswith("postgres"):
            pytest.skip("the deployment test needs PostgreSQL (run it with bin/test)")
        self.tmp = Path(tempfile.mkdtemp(prefix="mblog-deploy-"))
        self.tmp.chmod(0o755)  # nginx's and daphne's users must reach their files below
        self.teardowns: list[tuple[str, callable]] = []
        self.timings: dict[str, float] = {}
        self.figures: dict[str, dict] = {}
        self.sessions: dict[str, str] = {}
        self.is_root = os.geteuid() == 0
        me = pwd.getpwuid(os.geteuid())
        if self.is_root:
            self.user = "nobody"
            self.group = grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name
            self.web_group = "www-data"
        else:  # no privileges to switch users: everything runs as whoever runs the tests
            self.user = me.pw_name
            self.group = self.web_group = grp.getgrgid(me.pw_gid).gr_name
        self.http_port, self.https_port, self.metrics_port = free_port(), free_port(), free_port()
        self.pg_base = pg_url.rsplit("/", 1)[0]
        self.db_name = f"mblog_deploy_{self.pid}"
        self.redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/7"
        self.rendered = self.tmp / "rendered"
        self.run_dir = self.tmp / "run"
        self.log_dir = self.tmp / "log"
        self.static_root = self.tmp / "static"
        self.cert = self.tmp / "tls" / "cert.pem"
        self.key = self.tmp / "tls" / "key.pem"
        self.env_file = self.tmp / "etc" / "mblog.env"
        self.srv = self.tmp / "srv"  # /srv/mblog: releases/, venvs/, the current and previous links
        self.current = self.srv / "current"
        self.venv = Path(sys.executable).parent.parent  # the venv every release links (see seed_venv)
        self.supervisor_conf = self.tmp / "supervisord.conf"
        self.nginx_conf = self.tmp / "nginx.conf"
        # where the shipped files are read from; the guide's flow (install_from_guide) installs them
        self.supervisor_include = self.rendered / "supervisor" / "mblog.conf"
        self.nginx_includes = (self.rendered / "nginx" / "mblog-main.conf", self.rendered / "nginx" / "mblog.conf")
        self.bin = self.rendered / "bin"
        self.guide_flow = False
        self.values = {
            "APP_DIR": str(self.current),
            "USER": self.user,
            "GROUP": self.group,
            "WEB_GROUP": self.web_group,
            "ENV_FILE": str(self.env_file),
            "RUN_DIR": str(self.run_dir),
            "LOG_DIR": str(self.log_dir),
            "STATIC_ROOT": str(self.static_root),
            "MEDIA_ROOT": str(self.tmp / "media"),
            "SERVER_NAME": SERVER_NAME,
            "HTTP_LISTEN": f"127.0.0.1:{self.http_port}",
            "HTTPS_LISTEN": f"127.0.0.1:{self.https_port}",
            "TLS_CERT": str(self.cert),
            "TLS_KEY": str(self.key),
            "ACME_ROOT": str(self.tmp / "acme"),
            "PROCESSES": str(PROCESSES),
            "PING_INTERVAL": str(PING_INTERVAL),
            "PING_TIMEOUT": "30",
            "PROXY_READ_TIMEOUT": str(PROXY_READ_TIMEOUT),
            "MAX_OPEN_FILES": str(MAX_OPEN_FILES),
            "FAIL_TIMEOUT": "1",
            "DRAIN_SECONDS": "1",
            "NGINX_PID": str(self.tmp / "nginx.pid"),
            "SUPERVISORCTL": f"supervisorctl -c {self.supervisor_conf}",
            "HEALTH_INTERVAL": "0.5",
            "HEALTH_TIMEOUT": "1",
            "HEALTH_FAILURES": "2",
            "START_WAIT": "20",
            "SECRET_KEY": "",  # render.py generates one
            "DATABASE_URL": f"{self.pg_base}/{self.db_name}",
            "REDIS_URL": self.redis_url,
            "CHANNEL_LAYER_PREFIX": f"mblogdeploy{self.pid}",
            "METRICS_LISTEN": f"127.0.0.1:{self.metrics_port}",
        }

    def prepare_venv(self) -> None:
        """The site's user must be able to run the virtualenv's interpreter. This machine's
        dev venv may sit on an interpreter under /root (pyenv), which `nobody` cannot reach;
        then a venv from Debian's python3 that reuses the dev venv's packages stands in
        (same Python minor version), as docs/deploy.md has operators build theirs."""
        self.notes = []
        if not self.is_root:
            return
        venv = self.venv
        if run(["runuser", "-u", self.user, "--", str(venv / "bin" / "python"), "-c", ""], check=False).returncode == 0:
            return
        if not self.try_system_python_venv(venv):
            self.notes.append(f"{venv} is not usable by {self.user}: daphne and manage.py run as root")
            self.user, self.group = "root", "root"
            self.values.update(USER="root", GROUP="root")

    def try_system_python_venv(self, venv: Path) -> bool:
        """A venv from Debian's python3 (what docs/deploy.md builds), reusing the dev venv's
        packages through a .pth file; pip adds what this interpreter needs on top (e.g.
        redis-py wants async-timeout below Python 3.11.3). Cached in test-artifacts/,
        keyed by the requirements; False when that cannot be had (no same-version
        python3, no package index)."""
        import hashlib

        system = "/usr/bin/python3"
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        if not os.path.exists(system) or run([system, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                             check=False).stdout.strip() != version:
            return False
        site_packages = f"lib/python{version}/site-packages"
        key = hashlib.sha256((ROOT / "requirements.lock").read_bytes() + str(venv).encode()).hexdigest()[:12]
        cached = ARTIFACTS / f"deploy-venv-{key}"
        if not (cached / "ready").exists():
            ARTIFACTS.mkdir(exist_ok=True)
            build = Path(tempfile.mkdtemp(prefix="deploy-venv-", dir=ARTIFACTS))
            try:
                build.rmdir()
                run([system, "-m", "venv", "--without-pip", str(build)])
                (build / site_packages / "mblog-dev-venv.pth").write_text(str(venv / site_packages) + "\n")
                r = run([str(venv / "bin" / "python"), "-m", "pip", "--python", str(build / "bin" / "python"), "install",
                         "-q", "--disable-pip-version-check", "--require-hashes", "-r", str(ROOT / "requirements.lock")],
                        check=False, timeout=120)
                if r.returncode != 0:
                    self.notes.append(f"pip could not complete a {system} venv: {r.stderr.strip()[-300:]}")
                    return False
                daphne = build / "bin" / "daphne"
                daphne.write_text(f"#!{cached}/bin/python\nimport sys\nfrom daphne.cli import CommandLineInterface\n"
                                  "sys.exit(CommandLineInterface.entrypoint())\n")
                daphne.chmod(0o755)
                for script in (build / "bin").iterdir():  # venv paths are absolute: point them at the final place
                    if script.is_file() and not script.is_symlink():
                        text = script.read_text(errors="ignore")
                        if str(build) in text:
                            script.write_text(text.replace(str(build), str(cached)))
                probe = run(["runuser", "-u", self.user, "--", str(build / "bin" / "python"), "-c",
                             "import daphne.cli, redis.asyncio, psycopg, django"], check=False)
                if probe.returncode != 0:
                    self.notes.append(f"a {system} venv does not work for {self.user}: {probe.stderr.strip()[-300:]}")
                    return False
                (build / "ready").write_text("")
                try:
                    build.rename(cached)
                except OSError:  # a concurrent run got there first
                    pass
            finally:
                shutil.rmtree(build, ignore_errors=True)
        self.venv = cached
        self.notes.append(f"{venv} is not usable by {self.user}: ran on {cached} ({system} + the dev venv's packages)")
        return True

    # --- undo --------------------------------------------------------------------------

    def on_teardown(self, what: str, fn) -> None:
        self.teardowns.append((what, fn))

    def teardown(self) -> list[str]:
        errors = []
        for what, fn in reversed(self.teardowns):
            t = time.monotonic()
            try:
                fn()
            except Exception as exc:  # keep undoing the rest
                errors.append(f"{what}: {exc!r}")
            self.timings[f"teardown: {what}"] = time.monotonic() - t
        # Whatever mentions our temp dir (daphne, supervisord, nginx master) must be gone.
        left = processes_mentioning(str(self.tmp))
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if left:
            errors.append(f"processes still running after teardown (killed now): {left}")
        try:
            dest = ARTIFACTS / f"deploy-{self.pid}"
            shutil.rmtree(dest, ignore_errors=True)
            if self.log_dir.exists():
                shutil.copytree(self.log_dir, dest)
        except OSError:
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)
        return errors

    # --- build ---------------------------------------------------------------------------

    def render(self) -> None:
        values_file = self.tmp / "deploy.values"
        self.values["PYTHON"] = str(self.venv / "bin" / "python")  # builds no venv here: see seed_venv
        values_file.write_text("".join(f"{k}={v}\n" for k, v in self.values.items()))
        run([sys.executable, str(ROOT / "deploy" / "render.py"), str(values_file), str(self.rendered)])

    def chown(self, path: Path, user: str, group: str) -> None:
        if self.is_root:
            shutil.chown(path, user, group)

    def apply_tmpfiles(self, tmpfiles: Path) -> None:
        for line in tmpfiles.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                kind, path, mode, user, group, *_ = line.split()
                assert kind == "d", line
                Path(path).mkdir(parents=True, exist_ok=True)
                self.chown(Path(path), user, group)
                os.chmod(path, int(mode, 8))

    def install_files(self) -> None:
        # tmpfiles.d: the shipped file, applied by systemd-tmpfiles (or as it would: d PATH MODE USER GROUP)
        tmpfiles = self.rendered / "tmpfiles.d" / "mblog.conf"
        if self.is_root and shutil.which("systemd-tmpfiles"):
            run(["systemd-tmpfiles", "--create", str(tmpfiles)])
        else:
            self.apply_tmpfiles(tmpfiles)
        assert self.run_dir.is_dir()
        # the env file: root-owned, readable by the site's group only (docs/deploy.md)
        self.env_file.parent.mkdir()
        shutil.copy(self.rendered / "mblog.env", self.env_file)
        self.chown(self.env_file, "root" if self.is_root else self.user, self.group)
        os.chmod(self.env_file, 0o640)
        self.make_folders_and_certificate()
        # the first release, from this checkout; `current` points at it
        self.seed_venv()
        self.first_release = Path(self.release("prepare", str(ROOT)).stdout.strip())
        self.release("switch", str(self.first_release))

    def make_folders_and_certificate(self) -> None:
        """docs/deploy.md section 1's folders, and a certificate in place of certbot's."""
        # root:adm 0755, as Debian's /var/log/nginx: nginx's workers reopen their logs there
        # after a rotation, and the adm group reads them
        self.log_dir.mkdir()
        os.chmod(self.log_dir, 0o755)
        if self.is_root:
            shutil.chown(self.log_dir, "root", "adm")
        for d in (self.static_root, self.tmp / "media"):
            d.mkdir()
            self.chown(d, self.user, self.group)
        (self.tmp / "acme").mkdir()
        # self-signed, for the server name (and 127.0.0.1, which the clients dial)
        self.cert.parent.mkdir(mode=0o700)
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", f"/CN={SERVER_NAME}", "-addext", f"subjectAltName=DNS:{SERVER_NAME},IP:127.0.0.1",
             "-keyout", str(self.key), "-out", str(self.cert)])

    def seed_venv(self) -> None:
        """mblog-release keeps one venv per requirements.lock (and Python version) in
        VENVS_DIR, built by pip from the lock when missing. This test's venv stands in for it,
        under the name mblog-release computes: releases are made in seconds, not a pip run."""
        import hashlib

        python = self.values["PYTHON"]
        version = run([python, "-V"]).stdout
        digest = hashlib.sha256((ROOT / "requirements.lock").read_bytes() + version.encode()).hexdigest()[:16]
        venvs = self.srv / "venvs"
        venvs.mkdir(parents=True)
        (venvs / digest).symlink_to(self.venv)
        (venvs / f"{digest}.ready").touch()

    def release(self, *args, check=True, timeout=180) -> subprocess.CompletedProcess:
        """The shipped bin/mblog-release, as root would run it."""
        return run([str(self.bin / "mblog-release"), *args], check=check, timeout=timeout,
                   env={**CLEAN_ENV, "SUPERVISORCTL": f"supervisorctl -c {self.supervisor_conf}"})

    def create_database(self) -> None:
        psql = ["psql", f"{self.pg_base}/postgres", "-v", "ON_ERROR_STOP=1", "-qtAc"]
        run(psql + [f'CREATE DATABASE "{self.db_name}"'])
        self.databases = [self.db_name]

        def drop_databases():
            # together: each DROP DATABASE waits for a checkpoint, and concurrent ones share it
            drops = [subprocess.Popen(psql + [f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'], stdout=subprocess.DEVNULL)
                     for db in self.databases]
            assert [d.wait(120) for d in drops] == [0] * len(drops)

        self.on_teardown("drop databases", drop_databases)

    def manage(self, *args, timeout=120) -> subprocess.CompletedProcess:
        """The shipped wrapper: as the site's user, with the installed env file."""
        return run([str(self.bin / "mblog-manage"), *args], timeout=timeout, env=CLEAN_ENV)

    def supervisorctl(self, *args, check=True) -> subprocess.CompletedProcess:
        return run(["supervisorctl", "-c", str(self.supervisor_conf), *args], check=check, env=CLEAN_ENV)

    def start_supervisor(self) -> None:
        """Debian's supervisord.conf with its global paths moved into the temp dir and the
        rendered program as the only include."""
        stock = Path("/etc/supervisor/supervisord.conf")
        text = stock.read_text() if stock.exists() else (
            "[unix_http_server]\nfile=x\n[supervisord]\nlogfile=x\npidfile=x\nchildlogdir=x\n"
            "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"
            "[supervisorctl]\nserverurl=x\n[include]\nfiles = x\n"
        )
        sock = self.tmp / "supervisor.sock"
        replacements = {
            "file": str(sock),
            "logfile": str(self.log_dir / "supervisord.log"),
            "pidfile": str(self.tmp / "supervisord.pid"),
            "childlogdir": str(self.log_dir),
            "serverurl": f"unix://{sock}",
            "files": str(self.supervisor_include),
        }
        for key, value in replacements.items():
            text, n = re.subn(rf"(?m)^{key}\s*=.*$", f"{key}={value}", text)
            assert n == 1, f"supervisord.conf: expected one {key}= line"
        self.supervisor_conf.write_text(text)
        # Started with the usual default soft limit, so that the shipped minfds must raise it.
        run(["supervisord", "-c", str(self.supervisor_conf)], env=CLEAN_ENV, preexec_fn=default_file_limit)
        self.on_teardown("supervisor", self.stop_supervisor)
        self.supervisord_pid = int(wait_until(
            lambda: (self.tmp / "supervisord.pid").exists() and (self.tmp / "supervisord.pid").read_text().strip(),
            10, "supervisord's pid file"))

    def stop_supervisor(self) -> None:
        pids = [p for p in self.daphne_pids().values() if p]
        self.supervisorctl("shutdown", check=False)
        wait_until(lambda: not pid_alive(self.supervisord_pid), 30, "supervisord to exit")
        wait_until(lambda: not any(pid_alive(p) for p in pids), 10, "daphne processes to exit")

    def daphne_pids(self, processes: int = PROCESSES) -> dict[int, int]:
        out = {}
        for i in range(processes):
            r = self.supervisorctl("pid", f"mblog-daphne-{i}", check=False)
            out[i] = int(r.stdout.strip()) if r.stdout.strip().isdigit() else 0
        return out

    def socket_path(self, i: int) -> str:
        return str(self.run_dir / f"daphne-{i}.sock")

    def wait_healthy(self, processes, timeout=30) -> None:
        run([sys.executable, str(ROOT / "deploy" / "healthcheck.py"), "--host", SERVER_NAME, "--wait", str(timeout),
             *(self.socket_path(i) for i in processes)], timeout=timeout * PROCESSES + 10)

    def nginx_cmd(self, *args) -> list[str]:
        return [NGINX, "-c", str(self.nginx_conf), "-p", str(self.tmp / "nginx") + "/",
                "-e", str(self.log_dir / "nginx-main-error.log"), *args]

    def write_nginx_conf(self) -> None:
        """Debian's nginx.conf with the rendered site as the only site, and pid, logs and
        temp paths in the temp dir."""
        (self.tmp / "nginx").mkdir()
        text = Path("/etc/nginx/nginx.conf").read_text()
        local_paths = "\n".join(
            f"\t{name}_temp_path {self.tmp / 'nginx' / name};" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        subs = [
            (r"(?m)^\s*pid\s+[^;]+;", f"pid {self.tmp / 'nginx.pid'};"),
            (r"(?m)^\s*error_log\s+[^;]+;", f"error_log {self.log_dir / 'nginx-main-error.log'};"),
            (r"(?m)^\s*access_log\s+[^;]+;", f"\taccess_log {self.log_dir / 'nginx-main-access.log'};"),
            (r"(?m)^\s*include\s+/etc/nginx/conf\.d/[^;]*;", ""),
            # docs/deploy.md: the shipped main-context file, and worker_connections raised
            (r"(?m)^include\s+/etc/nginx/modules-enabled/\*\.conf;",
             f"include /etc/nginx/modules-enabled/*.conf;\ninclude {self.nginx_includes[0]};"),

            (r"(?m)^\s*include\s+/etc/nginx/sites-enabled/[^;]*;",
             f"{local_paths}\n\tinclude {self.nginx_includes[1]};"),
        ]
        if not self.is_root:
            subs.append((r"(?m)^\s*user\s+[^;]+;", ""))
        for pattern, repl in subs:
            text, n = re.subn(pattern, repl, text)
            assert n >= 1, f"/etc/nginx/nginx.conf: nothing matched {pattern}"
        self.nginx_conf.write_text(text)
        if self.guide_flow:
            return  # the guide's nginx block raises worker_connections
        # docs/deploy.md's own command raises worker_connections (on our copy of nginx.conf)
        line = next(x for x in (ROOT / "docs" / "deploy.md").read_text().splitlines()
                    if x.startswith("sed -i -E") and "worker_connections" in x)
        run(["sh", "-c", line.replace("/etc/nginx/nginx.conf", str(self.nginx_conf))
             .replace("/tmp/mblog-rendered", str(self.rendered))])
        assert f"worker_connections {self.worker_connections()};" in self.nginx_conf.read_text()

    def worker_connections(self) -> str:
        text = (self.rendered / "nginx" / "mblog-main.conf").read_text()
        return re.search(r"worker_connections (\d+);", text).group(1)

    def start_nginx(self) -> None:
        self.write_nginx_conf()
        self.nginx_test_output = run(self.nginx_cmd("-t")).stderr
        run(self.nginx_cmd(), env=CLEAN_ENV)
        self.on_teardown("nginx", self.stop_nginx)
        pidfile = self.tmp / "nginx.pid"
        self.nginx_pid = int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 10, "nginx pid file"))

    def stop_nginx(self) -> None:
        workers = children_of(self.nginx_pid)
        run(self.nginx_cmd("-s", "quit"), check=False)
        try:
            wait_until(lambda: not pid_alive(self.nginx_pid), 10, "nginx to quit")
        except AssertionError:
            os.kill(self.nginx_pid, signal.SIGKILL)
            raise
        finally:
            for pid in workers:
                if pid_alive(pid):
                    os.kill(pid, signal.SIGKILL)

    # --- the guide: docs/deploy.md, run as written ---------------------------------------

    def guide_paths(self, extra=()) -> list[tuple[str, str]]:
        """The guide's paths and names, and this test's, in the order replaced."""
        return [
            *extra,
            ("/srv/mblog/src", str(self.src)),
            ("/srv/mblog", str(self.srv)),
            ("/etc/mblog", str(self.etc)),
            ("/etc/nginx/", f"{self.tmp / 'etc-nginx'}/"),
            ("/etc/supervisor/conf.d/", f"{self.tmp / 'etc-supervisor'}/"),
            ("/etc/logrotate.d/", f"{self.etc / 'logrotate.d'}/"),
            ("/etc/cron.d/", f"{self.etc / 'cron.d'}/"),
            ("/usr/local/bin/", f"{self.tmp / 'bin'}/"),
            ("/run/mblog", str(self.run_dir)),
            ("/var/log/mblog", str(self.log_dir)),
            ("/var/backups/mblog", str(self.tmp / "backups")),
            ("/tmp/mblog-rendered", str(self.tmp / "rendered")),
            ("-g mblog ", f"-g {self.group} "),
            ("https://mblog.example.com", f"https://{SERVER_NAME}:{self.https_port}"),
            ("http://mblog.example.com", f"http://{SERVER_NAME}:{self.http_port}"),
            ("mblog.example.com", SERVER_NAME),
        ]

    def guide_env(self) -> dict[str, str]:
        return {**CLEAN_ENV, "PATH": f"{self.tmp / 'standins'}:{self.tmp / 'bin'}:{CLEAN_ENV['PATH']}"}

    def guide_command(self, name: str, extra=()) -> list[str]:
        """The guide's block `test:NAME`, with this test's paths, for bash -e."""
        body = GUIDE_BLOCKS[name]
        for old, new in self.guide_paths(extra):
            body = body.replace(old, new)
        GUIDE_RAN.add(name)
        return ["bash", "-e", "-c", body]

    def guide(self, name: str, extra=(), check=True, timeout=300) -> subprocess.CompletedProcess:
        return run(self.guide_command(name, extra), check=check, timeout=timeout, env=self.guide_env())

    def prepare_machine(self) -> None:
        """What the guide's untested blocks of sections 1 and 2 leave behind (folders and
        owners, the checkout releases are copied from), a certificate in place of certbot's,
        and the stand-ins first on PATH: supervisorctl and nginx with this test's
        configuration, curl that takes the site's name to 127.0.0.1 and trusts its
        certificate, and editor, which writes this test's values."""
        self.guide_flow = True
        self.etc = self.env_file.parent
        self.etc.mkdir(mode=0o750)
        shutil.chown(self.etc, "root", self.group)
        for d in (self.etc / "logrotate.d", self.etc / "cron.d", self.tmp / "bin", self.tmp / "standins",
                  self.tmp / "etc-supervisor", *(self.tmp / "etc-nginx" / d for d in
                                                ("modules-enabled", "sites-available", "sites-enabled"))):
            d.mkdir(parents=True)
        self.nginx_conf = self.tmp / "etc-nginx" / "nginx.conf"
        self.nginx_includes = (self.tmp / "etc-nginx" / "modules-enabled" / "*.conf",
                               self.tmp / "etc-nginx" / "sites-enabled" / "*")
        self.supervisor_include = self.tmp / "etc-supervisor" / "*.conf"
        self.bin = self.tmp / "bin"
        self.make_folders_and_certificate()
        # `git clone …/mblog.git /srv/mblog/src`: a repository holding the code under test
        # (the working tree, uncommitted changes included), cloned; upgrades are commits to it
        self.upstream, self.src = self.tmp / "upstream", self.tmp / "src"
        shutil.copytree(ROOT, self.upstream, symlinks=True, ignore=shutil.ignore_patterns(
            ".git", ".venv", "test-artifacts", "__pycache__", "node_modules", "staticfiles", "media"))
        self.upstream_git("init", "-q", "-b", "main")
        self.upstream_git("add", "-A")
        self.upstream_git("commit", "-qm", "the code under test")
        run(["git", "clone", "-q", str(self.upstream), str(self.src)])
        self.values["PYTHON"] = str(self.venv / "bin" / "python")
        self.seed_venv()
        (self.tmp / "test.values").write_text("".join(f"{k}={v}\n" for k, v in self.values.items()))
        http, https = self.http_port, self.https_port
        standins = {
            "supervisorctl": f'exec {shutil.which("supervisorctl")} -c {self.supervisor_conf} "$@"',
            "nginx": f'exec {" ".join(self.nginx_cmd())} "$@"',
            "curl": f'exec {shutil.which("curl")} --resolve {SERVER_NAME}:{http}:127.0.0.1 '
                    f'--resolve {SERVER_NAME}:{https}:127.0.0.1 --cacert {self.cert} "$@"',
            "editor": f'cat {self.tmp / "test.values"} > "$1"',
        }
        for name, line in standins.items():
            path = self.tmp / "standins" / name
            path.write_text(f"#!/bin/sh\n# docs/deploy.md as run by tests/test_deploy.py\n{line}\n")
            path.chmod(0o755)

    def edit_values(self, **changes) -> None:
        """What the operator does in `editor /etc/mblog/deploy.values`."""
        self.values.update(changes)
        (self.tmp / "test.values").write_text("".join(f"{k}={v}\n" for k, v in self.values.items()))

    def upstream_git(self, *args) -> str:
        git = ["git", "-c", "user.name=mblog test", "-c", "user.email=test@mblog.test", "-C", str(self.upstream)]
        if args[0] == "init":
            git = git[:-2] + [args[0], *args[1:], str(self.upstream)]
            return run(git).stdout
        return run([*git, *args]).stdout

    def commit_upstream(self, message: str, path: str, text: str, **more: str) -> None:
        """A new version of the code, in the repository the checkout pulls from: text
        appended to path (and to each path in more, a new file when missing)."""
        for name, added in {path: text, **more}.items():
            with open(self.upstream / name, "a") as f:
                f.write(added)
        self.upstream_git("add", "-A")
        self.upstream_git("commit", "-qm", message)

    # --- clients -------------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))

    def https(self, method: str, path: str, body: str | None = None, headers: dict | None = None):
        conn = http.client.HTTPSConnection("127.0.0.1", self.https_port, context=self.ssl_context(), timeout=10)
        try:
            conn.request(method, path, body=body, headers={"Host": SERVER_NAME, **(headers or {})})
            response = conn.getresponse()
            return response, response.read()
        finally:
            conn.close()

    def login(self, username: str) -> str:
        """Sign in through nginx like a browser: GET the form, POST it with the CSRF token.
        Returns the session cookie (kept: one sign-in per user per run)."""
        if username not in self.sessions:
            self.sessions[username] = self._login(username)
        return self.sessions[username]

    def _login(self, username: str) -> str:
        response, body = self.https("GET", "/accounts/login/")
        assert response.status == 200, body[:300]
        csrf_cookie = re.search(r"csrftoken=([^;]+)", response.getheader("Set-Cookie", "")).group(1)
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1).decode()
        form = f"username={username}&password={DEMO_PASSWORD}&csrfmiddlewaretoken={token}"
        response, body = self.https("POST", "/accounts/login/", form, {
            "Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={csrf_cookie}",
            "Origin": ORIGIN, "Referer": f"{ORIGIN}/accounts/login/",
        })
        assert response.status == 302, (response.status, body[:500])
        cookies = response.getheader("Set-Cookie", "")
        session = re.search(r"sessionid=([^;]+)", cookies)
        assert session, cookies
        assert "Secure" in cookies  # DJANGO_BEHIND_PROXY + X-Forwarded-Proto from nginx
        return f"sessionid={session.group(1)}"

    def ws_connect(self, cookie: str) -> websocket.WebSocket:
        ws = websocket.create_connection(
            f"wss://127.0.0.1:{self.https_port}/ws/inform/", host=SERVER_NAME, origin=ORIGIN, cookie=cookie,
            # a client cannot choose the address daphne sees: nginx overwrites this
            header=["X-Forwarded-For: 203.0.113.9"],
            sslopt={"ca_certs": str(self.cert)}, timeout=10,
        )
        return ws

    def daphne_log(self, i: int) -> str:
        path = self.log_dir / f"daphne-{i}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def open_socket(self, cookie: str) -> "Socket":
        return Socket(self.ws_connect(cookie))

    def landed_on(self, sock: "Socket") -> int:
        """Which daphne process holds this socket: its access log names our client port."""
        port = sock.port
        needle = re.compile(rf'^127\.0\.0\.1:{port} .*"WSCONNECT /ws/inform/"', re.M)

        def find():
            hits = [i for i in range(PROCESSES) if needle.search(self.daphne_log(i))]
            return hits or None

        hits = wait_until(find, 5, f"a WSCONNECT from 127.0.0.1:{port} in a daphne access log")
        assert len(hits) == 1, hits
        return hits[0]

    def send_inform(self, to: str, text: str) -> int:
        return self.send_informs([to], text)[to]

    def send_informs(self, to: list[str], text: str) -> dict[str, int]:
        """`manage.py send_inform` from outside, through the shipped wrapper: {user: id}."""
        args = [a for name in to for a in ("--to", name)]
        result = self.manage("send_inform", *args, "--verb", "mention", "--text", text, timeout=120)
        ids = [int(i) for i in re.search(r"ids ([\d, ]+)", result.stdout).group(1).split(",")]
        return dict(zip(to, ids, strict=True))


def recv_frame(ws, timeout: float) -> dict:
    ws.settimeout(timeout)
    return json.loads(ws.recv())


class Socket:
    """A WebSocket that behaves like a browser's: a reader thread answers daphne's pings
    at once (websocket-client pongs inside recv) and queues the frames for the test."""

    CLOSED = object()

    def __init__(self, ws: websocket.WebSocket):
        self.ws = ws
        self.port = ws.sock.getsockname()[1]
        self.frames: queue.Queue = queue.Queue()
        self.stopping = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while not self.stopping.is_set():
            try:
                self.frames.put(recv_frame(self.ws, 0.3))
            except websocket.WebSocketTimeoutException:
                continue
            except Exception:
                self.frames.put(self.CLOSED)
                return

    def send(self, frame: dict) -> None:
        self.ws.send(json.dumps(frame))

    def recv(self, timeout: float = 10) -> dict:
        frame = self.frames.get(timeout=timeout)
        if frame is self.CLOSED:
            self.frames.put(self.CLOSED)
            raise websocket.WebSocketConnectionClosedException("closed by the server")
        return frame

    def recv_inform(self, timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            frame = self.recv(max(0.05, deadline - time.monotonic()))
            if frame["type"] == "inform":
                return frame

    def closed_by_server(self, timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        try:
            while True:
                self.recv(max(0.05, deadline - time.monotonic()))
        except websocket.WebSocketConnectionClosedException:
            return True
        except queue.Empty:
            return False

    def close(self) -> None:
        self.stopping.set()
        self.reader.join(2)
        try:
            self.ws.close(timeout=1)
        except Exception:
            pass


class ResumingClient(threading.Thread):
    """What the browser client does: keep a socket open, reconnect on close, send
    {"type":"sync","after":last} on every open, drop ids already shown. Counts what a
    user would notice: failed reconnects, and close codes (1001 "going away" is a drain;
    None means the socket dropped without a close frame, which a browser sees as 1006)."""

    def __init__(self, site: Deployment, cookie: str, last_id: int):
        super().__init__(daemon=True)
        self.site, self.cookie, self.last = site, cookie, last_id
        self.ids: list[int] = []
        self.seen: set[int] = {last_id}
        self.reconnect_seconds: list[float] = []
        self.failed_connects: list[str] = []
        self.close_codes: list[int | None] = []
        self.connected = threading.Event()
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self):
        try:
            self.loop()
        except BaseException as exc:  # surfaced by the test
            self.error = exc

    def loop(self):
        closed_at = None
        while not self.stopping.is_set():
            try:
                ws = self.site.ws_connect(self.cookie)
            except Exception as exc:
                self.failed_connects.append(repr(exc)[:200])
                time.sleep(0.1)
                continue
            self.connected.set()
            if closed_at is not None:
                self.reconnect_seconds.append(time.monotonic() - closed_at)
            try:
                ws.send(json.dumps({"type": "sync", "after": self.last}))
                while not self.stopping.is_set():
                    ws.settimeout(0.3)
                    try:
                        received = ws.recv_frame()
                    except websocket.WebSocketTimeoutException:
                        continue
                    if received.opcode == websocket.ABNF.OPCODE_PING:
                        ws.pong(received.data)
                        continue
                    if received.opcode == websocket.ABNF.OPCODE_CLOSE:
                        # the code a browser reports is the one in the close frame it received
                        # (RFC 6455 7.1.5), whether or not its reply still reaches the server,
                        # which may have dropped the connection meanwhile on a busy machine
                        data = received.data
                        self.close_codes.append(int.from_bytes(data[:2], "big") if len(data) >= 2 else None)
                        try:
                            ws.send_close()
                        except (websocket.WebSocketException, OSError):
                            pass
                        break
                    if received.opcode != websocket.ABNF.OPCODE_TEXT:
                        continue
                    frame = json.loads(received.data)
                    # a live frame may overtake the sync's answer: keep every id once
                    if frame["type"] == "inform" and frame["id"] not in self.seen:
                        self.seen.add(frame["id"])
                        self.ids.append(frame["id"])
                        self.last = max(self.last, frame["id"])
            except (websocket.WebSocketException, OSError):
                if not self.stopping.is_set():
                    self.close_codes.append(None)
            finally:
                closed_at = time.monotonic()
                ws.close(timeout=1)


class HttpProber(threading.Thread):
    """GETs through nginx, back to back, each on a new connection, while something is
    restarted: every answer must be a 200."""

    PATHS = ("/healthz", "/accounts/login/")

    def __init__(self, site: Deployment):
        super().__init__(daemon=True)
        self.site = site
        self.ok = 0
        self.failures: list[str] = []
        self.stopping = threading.Event()

    def run(self):
        n = 0
        while not self.stopping.is_set():
            path = self.PATHS[n % len(self.PATHS)]
            n += 1
            try:
                response, body = self.site.https("GET", path)
                if response.status == 200:
                    self.ok += 1
                else:
                    self.failures.append(f"{path}: {response.status} {body[:100]!r}")
            except Exception as exc:
                self.failures.append(f"{path}: {exc!r}"[:200])
            time.sleep(0.02)


def ensure_debian_packages() -> None:
    """nginx and supervisor from Debian's packages when missing (bin/test does this too;
    this covers a bare `pytest tests/test_deploy.py`). Their stock services are not used."""
    missing = [pkg for pkg, present in (
        ("nginx", os.path.exists(NGINX)), ("supervisor", bool(shutil.which("supervisord"))),
        ("openssl", bool(shutil.which("openssl"))), ("postgresql-client", bool(shutil.which("psql"))),
    ) if not present]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail(f"missing Debian packages {missing}: run bin/test as root, or apt-get install {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-qq"], timeout=300, env=env)
    run(["apt-get", "install", "-y", "-qq", *missing], timeout=600, env=env)


@pytest.fixture(scope="module")
def site():
    """docs/deploy.md, sections 3 to 6: every block marked test:NAME, as written (with this
    test's paths, Deployment.guide_paths); the untested ones by this test's own means."""
    ensure_debian_packages()
    d = Deployment()
    if not d.is_root:
        pytest.skip("docs/deploy.md's commands run as root (as bin/test runs this test)")
    started = time.monotonic()
    try:
        d.prepare_venv()
        d.prepare_machine()
        d.create_database()
        t = time.monotonic()
        d.guide("render")
        d.guide("install")
        d.guide("first-release")
        d.first_release = Path(os.readlink(d.current))
        d.timings["first release (migrate, collectstatic) + seed"] = time.monotonic() - t
        t = time.monotonic()
        d.guide("supervisor-conf")
        d.start_supervisor()  # service supervisor restart
        d.guide("supervisor-up")
        d.timings["supervisor: 2 daphne healthy"] = time.monotonic() - t
        d.start_nginx()  # service nginx start
        r = d.guide("nginx")
        d.nginx_test_output = r.stderr
        assert re.search(r"(?m)^HTTP/\S+ 301", r.stdout) and '"status": "ok"' in r.stdout, r.stdout
        assert not (d.tmp / "rendered").exists()  # the guide removed it (the secret key)
        # the rendered files again, for the tests to read (the same values; another secret key)
        d.rendered = d.tmp / "rendered-check"
        run([sys.executable, str(ROOT / "deploy" / "render.py"), str(d.etc / "deploy.values"), str(d.rendered)])
        d.timings["setup total"] = time.monotonic() - started
        yield d
    finally:
        t = time.monotonic()
        errors = d.teardown()
        print(f"\ndeploy test timings: {json.dumps({k: round(v, 2) for k, v in d.timings.items()})}, "
              f"teardown {time.monotonic() - t:.2f}s; figures: {d.figures}; notes: {getattr(d, 'notes', [])}")
        if errors:
            pytest.fail("teardown: " + "; ".join(errors))


def test_shipped_configs_are_consistent(site):
    assert "syntax is ok" in site.nginx_test_output and "test is successful" in site.nginx_test_output
    nginx = (site.rendered / "nginx" / "mblog.conf").read_text()
    supervisor = (site.rendered / "supervisor" / "mblog.conf").read_text()
    unit = (site.rendered / "systemd" / "mblog-daphne@.service").read_text()
    assert "{{" not in nginx + supervisor + unit
    # systemd is the alternative to supervisor: the same daphne command line
    commands = [c for c in re.findall(r"(?m)^command=(.*)$", supervisor) if "realtime.serve" in c]
    assert len(commands) == PROCESSES  # one program per process
    command = commands[0]
    exec_start = re.search(r"(?m)^ExecStart=(.*)$", unit).group(1).replace("%i", "0")
    assert command == exec_start
    # nginx lists exactly the sockets daphne listens on
    upstreams = re.findall(r"server unix:(\S+)", nginx)
    assert upstreams == [site.socket_path(i) for i in range(PROCESSES)]
    assert "--proxy-headers" in command
    # the read timeout outlasts the ping interval (render.py refuses otherwise)
    read_timeout = int(re.search(r"proxy_read_timeout (\d+)s;", nginx).group(1))
    assert read_timeout > int(re.search(r"--ping-interval (\d+)", command).group(1))
    bad = dict(site.values, PROXY_READ_TIMEOUT=str(PING_INTERVAL))
    bad_values = site.tmp / "bad.values"
    bad_values.write_text("".join(f"{k}={v}\n" for k, v in bad.items()))
    r = run([sys.executable, str(ROOT / "deploy" / "render.py"), str(bad_values), str(site.tmp / "bad")], check=False)
    assert r.returncode != 0 and "PROXY_READ_TIMEOUT" in r.stderr
    # the health watcher under systemd: the supervisor program's command, restarting through systemd
    watch_unit = (site.rendered / "systemd" / "mblog-watch.service").read_text()
    watch_command = re.search(r"(?m)^\[program:mblog-watch\]\ncommand=(.*)$", supervisor).group(1)
    watch_exec = re.search(r"(?m)^ExecStart=(.*)$", watch_unit).group(1)
    restart_option = re.compile(r'--restart "[^"]*"')
    assert restart_option.sub("", watch_exec) == restart_option.sub("", watch_command)
    assert '--restart "systemctl kill --signal=SIGKILL mblog-daphne@{n}.service"' in watch_exec
    assert re.search(r"(?m)^Restart=always$", watch_unit) and "[Install]\nWantedBy=multi-user.target" in watch_unit
    # the systemd units pass systemd's own checks (the daphne one as an instance of the template)
    if shutil.which("systemd-analyze"):
        units = site.tmp / "systemd"
        units.mkdir(exist_ok=True)
        (units / "mblog-daphne@.service").write_text(unit)
        (units / "mblog-daphne@0.service").symlink_to("mblog-daphne@.service")
        (units / "mblog-watch.service").write_text(watch_unit)
        r = run(["systemd-analyze", "verify", "--man=no", str(units / "mblog-daphne@0.service"),
                 str(units / "mblog-watch.service")], check=False)
        assert r.returncode == 0, r.stdout + r.stderr
    # the sockets: nginx's group may connect, nobody else
    for i in range(PROCESSES):
        st = os.stat(site.socket_path(i))
        assert oct(st.st_mode & 0o777) == oct(0o660), oct(st.st_mode)
        assert grp.getgrgid(st.st_gid).gr_name == site.web_group
        assert pwd.getpwuid(st.st_uid).pw_name == site.user


def test_daphne_may_hold_many_sockets_and_nginx_caps_them_per_address(site):
    # Each socket is an open file: the shipped supervisor file raises the limit for daphne.
    for pid in site.daphne_pids().values():
        limits = Path(f"/proc/{pid}/limits").read_text()
        assert int(re.search(r"(?m)^Max open files\s+(\d+)", limits).group(1)) >= MAX_OPEN_FILES > 1024, limits
    unit = (site.rendered / "systemd" / "mblog-daphne@.service").read_text()
    assert f"LimitNOFILE={MAX_OPEN_FILES}" in unit
    nginx = (site.rendered / "nginx" / "mblog.conf").read_text()
    ws_location = nginx[nginx.index("location /ws/"):]
    assert re.search(r"limit_conn mblog_ws_per_address \d+;", ws_location[: ws_location.index("}")])


def test_static_and_media_keep_hsts_and_daphne_caps_frame_size(site):
    # add_header in a location drops the server block's: the shipped file repeats HSTS.
    for path in ("/static/inform/inform.js", "/media/nothing-here.png", "/healthz"):
        response, _ = site.https("GET", path)
        assert "max-age=31536000" in (response.getheader("Strict-Transport-Security") or ""), path
    # daphne's frame limit is the app's, in both process managers and the env file.
    supervisor = (site.rendered / "supervisor" / "mblog.conf").read_text()
    env_file = site.env_file.read_text()
    size = int(re.search(r"--websocket-max-message-size (\d+)", supervisor).group(1))
    assert f"WS_MAX_MESSAGE_BYTES={size}\n" in env_file and size < 1024 * 1024
    # A client frame over it is refused by daphne (close 1009) before the app reads it.
    sock = site.ws_connect(site.login("carol"))
    try:
        # closed while the frame is still being sent, or right after it
        with pytest.raises(websocket.WebSocketConnectionClosedException):
            sock.send("x" * (size + 1))
            for _ in range(20):
                sock.recv()
    finally:
        sock.close()


def test_metrics_only_on_the_private_listener(site):
    response, body = site.https("GET", "/metrics")
    assert response.status == 404 and b"realtime_" not in body
    for i in range(PROCESSES):
        with urllib.request.urlopen(f"http://127.0.0.1:{site.metrics_port}/metrics/{i}", timeout=10) as r:
            text = r.read().decode()
        assert r.status == 200 and 'realtime_open_sockets{user="signed_in"}' in text
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://127.0.0.1:{site.metrics_port}/metrics", timeout=10)
    assert refused.value.code == 404


def test_http_static_health_and_login_through_nginx(site):
    # plain HTTP only redirects to HTTPS
    conn = http.client.HTTPConnection("127.0.0.1", site.http_port, timeout=10)
    conn.request("GET", "/inform/?page=2", headers={"Host": SERVER_NAME})
    response = conn.getresponse()
    assert response.status == 301
    assert response.getheader("Location") == f"https://{SERVER_NAME}/inform/?page=2"
    conn.close()

    # static files come from STATIC_ROOT through nginx, never from daphne
    js = site.static_root / "inform" / "inform.js"
    assert js.exists(), "collectstatic did not fill STATIC_ROOT"
    response, body = site.https("GET", "/static/inform/inform.js")
    assert response.status == 200 and body == js.read_bytes()
    assert "max-age=3600" in (response.getheader("Cache-Control") or "")
    assert not any("/static/" in site.daphne_log(i) for i in range(PROCESSES))

    # pages link the hashed names, which nginx serves gzipped and cached for good
    response, body = site.https("GET", "/accounts/login/")
    hashed = re.search(rb'src="(/static/inform/inform\.[0-9a-f]{12}\.js)"', body)
    assert hashed, body[:2000]
    response, gz = site.https("GET", hashed.group(1).decode(), headers={"Accept-Encoding": "gzip"})
    assert response.status == 200 and response.getheader("Content-Encoding") == "gzip"
    assert "immutable" in response.getheader("Cache-Control") and "max-age=315360000" in response.getheader("Cache-Control")
    assert "max-age=31536000" in (response.getheader("Strict-Transport-Security") or "")
    assert gzip.decompress(gz) == js.read_bytes()

    # /healthz through nginx, for a load balancer
    response, body = site.https("GET", "/healthz")
    assert response.status == 200, body
    assert json.loads(body)["status"] == "ok"
    assert "max-age" in (response.getheader("Strict-Transport-Security") or "")

    # a page over HTTPS, signed in; the session cookie is Secure
    cookie = site.login("bob")
    response, body = site.https("GET", "/inform/", headers={"Cookie": cookie})
    assert response.status == 200 and b'id="inform-badge"' in body


def test_websockets_on_both_daphnes_survive_a_kill_and_lose_nothing(site):
    cookie = site.login("alice")
    opened: list[Socket] = []

    def open_socket(cookie) -> Socket:
        sock = site.open_socket(cookie)
        opened.append(sock)
        return sock

    try:
        # sockets through nginx until one is on each daphne process
        on: dict[int, Socket] = {}
        for _ in range(20):
            sock = open_socket(cookie)
            i = site.landed_on(sock)  # also proves the real client address reached daphne
            if i in on:
                sock.close()
            else:
                on[i] = sock
            if len(on) == PROCESSES:
                break
        assert len(on) == PROCESSES, f"all sockets landed on daphne {list(on)}"
        assert not any("203.0.113.9" in site.daphne_log(i) for i in range(PROCESSES))

        # carol's socket, on the process that will survive, carries nothing but daphne's
        # pings: they must keep nginx (proxy_read_timeout) from closing it
        victim, survivor = 0, 1
        carol_cookie = site.login("carol")
        for _ in range(20):
            carol = open_socket(carol_cookie)
            if site.landed_on(carol) == survivor:
                break
            carol.close()
        else:
            pytest.fail("no carol socket landed on the surviving daphne")
        carol_idle_since = time.monotonic()

        # send_inform from outside reaches alice on both processes
        first = site.send_inform("alice", "hello through nginx")
        for i, sock in on.items():
            frame = sock.recv_inform()
            assert (frame["id"], frame["text"]) == (first, "hello through nginx"), f"daphne {i}"
        last_seen = first

        # kill -9 the victim: nginx closes its client sockets; supervisor restarts it
        old_pids = site.daphne_pids()
        killed_at = time.monotonic()
        os.kill(old_pids[victim], signal.SIGKILL)
        assert on[victim].closed_by_server(), "the socket on the killed daphne stayed open"
        during = site.send_inform("alice", f"while daphne {victim} was down")
        # the survivor's socket got it live
        assert on[survivor].recv_inform()["id"] == during

        # the client reconnects (nginx sends it to a live process) and syncs: nothing lost
        t = time.monotonic()
        resumed = Socket(wait_until(lambda: _try_connect(site, cookie), 10, "a reconnect through nginx"))
        opened.append(resumed)
        reconnect = time.monotonic() - t
        resumed.send({"type": "sync", "after": last_seen})
        frame = resumed.recv_inform()
        assert (frame["id"], frame["text"]) == (during, f"while daphne {victim} was down")
        assert resumed.recv()["type"] == "unread"  # a sync ends with the count

        # carol's socket sat idle for longer than nginx's read timeout and is still open;
        # the resumed socket is live again, and so is the survivor's
        idle = time.monotonic() - carol_idle_since
        if idle < PROXY_READ_TIMEOUT + 1:
            time.sleep(PROXY_READ_TIMEOUT + 1 - idle)
        after = site.send_informs(["alice", "carol"], "after the restart")
        assert carol.recv_inform()["id"] == after["carol"]
        assert resumed.recv_inform()["id"] == after["alice"]
        assert on[survivor].recv_inform()["id"] == after["alice"]

        # supervisor brought the victim back: new pid, RUNNING, healthy on its own socket
        wait_until(lambda: site.daphne_pids()[victim] not in (0, old_pids[victim]), 20, "supervisor to restart daphne")
        site.wait_healthy([victim], timeout=30)
        restarted_in = time.monotonic() - killed_at
        status = site.supervisorctl("status", check=False).stdout
        assert len(re.findall(r"(?m)^mblog-daphne-\d+\s+RUNNING", status)) == PROCESSES, status
        assert site.daphne_pids()[survivor] == old_pids[survivor]
    finally:
        for sock in opened:
            sock.close()
    site.timings["kill -9 -> reconnect through nginx"] = reconnect
    site.timings["kill -9 -> restarted and healthy"] = restarted_in


def _try_connect(site, cookie):
    try:
        return site.ws_connect(cookie)
    except Exception:
        return None


def scale(site, processes: int) -> None:
    """docs/deploy.md "Changing the number of processes": PROCESSES edited, rendered again,
    then up (the new processes first, then nginx) or down (nginx first)."""
    up = processes > int(site.values["PROCESSES"])
    site.edit_values(PROCESSES=str(processes))
    site.guide("render")
    site.guide("scale-up" if up else "scale-down")


def test_rolling_restart_and_scaling_nobody_notices(site):
    """Scale 2 -> 3, a rolling restart with the shipped script (which finds the 3 processes
    running), scale 3 -> 2, while a reconnecting client and an HTTP prober run through
    nginx: every request answered, every reconnect accepted, every notification once."""
    cookie = site.login("alice")
    start_id = site.send_inform("alice", "before the rolling restart")
    client = ResumingClient(site, cookie, start_id)
    prober = HttpProber(site)
    client.start()
    assert client.connected.wait(10), "the client's socket did not open"
    prober.start()
    pids_before = site.daphne_pids()
    sent = []
    try:
        t = time.monotonic()
        scale(site, 3)
        wait_until(lambda: '"GET /accounts/login/' in site.daphne_log(2), 15, "nginx to send the new process requests")
        scaled = site.daphne_pids(3)
        assert scaled[2] and {0: scaled[0], 1: scaled[1]} == pids_before  # the others were left alone
        sent.append(site.send_inform("alice", "with 3 processes"))
        site.timings["scale 2 -> 3"] = time.monotonic() - t

        t = time.monotonic()
        restart = subprocess.Popen(site.guide_command("rolling-restart"), env=site.guide_env(),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            while restart.poll() is None:
                sent.append(site.send_inform("alice", f"during the rolling restart #{len(sent)}"))
            output = restart.stdout.read()
        finally:
            if restart.poll() is None:
                restart.kill()
        assert restart.returncode == 0, output
        assert "all 3 processes restarted and healthy" in output, output
        restarted = site.daphne_pids(3)
        assert all(restarted[i] != scaled[i] for i in range(3)), (scaled, restarted)
        site.timings["rolling restart of 3 daphne"] = time.monotonic() - t

        t = time.monotonic()
        scale(site, 2)
        assert "mblog-daphne-2" not in site.supervisorctl("status", check=False).stdout
        assert site.daphne_pids() == {0: restarted[0], 1: restarted[1]}
        site.timings["scale 3 -> 2"] = time.monotonic() - t
        sent.append(site.send_inform("alice", "after the rolling restart"))
        wait_until(lambda: set(sent) <= client.seen, 15, "the client to receive everything")
    finally:
        prober.stopping.set()
        prober.join(15)
        client.stopping.set()
        client.join(5)
    figures = {"http ok": prober.ok, "http failed": len(prober.failures), "reconnects": len(client.reconnect_seconds),
               "failed reconnects": len(client.failed_connects), "close codes": client.close_codes}
    site.figures["scale 2 -> 3, rolling restart, scale 3 -> 2"] = figures
    print(f"\nrolling restart and scaling: {figures}; first failures: {prober.failures[:3]} {client.failed_connects[:3]}")
    assert client.error is None, client.error
    assert sorted(client.ids) == sent, (client.ids, sent)  # every one, none twice
    assert prober.ok > 0 and prober.failures == [], figures
    assert client.failed_connects == [], figures
    # each process said "going away" to its sockets before it went
    assert len(client.close_codes) >= 1 and set(client.close_codes) == {1001}, figures
    installed = site.tmp / "etc-nginx" / "sites-available" / "mblog.conf"
    assert re.findall(r"server unix:(\S+)", installed.read_text()) == [
        site.socket_path(i) for i in range(PROCESSES)]
    site.timings["rolling restart: worst reconnect"] = max(client.reconnect_seconds)


class Sender(threading.Thread):
    """send_inform from outside, back to back, while something else happens."""

    def __init__(self, site: Deployment, sent: list[int]):
        super().__init__(daemon=True)
        self.site, self.sent = site, sent
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self):
        try:
            while not self.stopping.is_set():
                self.sent.append(self.site.send_inform("alice", f"during a release #{len(self.sent)}"))
        except BaseException as exc:
            self.error = exc


def serving(site, processes=PROCESSES) -> dict[int, str]:
    """The release each daphne process runs: its working directory (set at start)."""
    return {i: os.readlink(f"/proc/{pid}/cwd") for i, pid in site.daphne_pids(processes).items()}


def hashed_js(site) -> str:
    response, body = site.https("GET", "/accounts/login/")
    return re.search(rb'src="/static/inform/(inform\.[0-9a-f]{12}\.js)"', body).group(1).decode()


@pytest.mark.timeout(300)
def test_upgrade_rollback_and_bad_releases_nobody_notices(site):
    """docs/deploy.md section 7 with the shipped mblog-release: an upgrade to a new release
    (its own folder, `current` switched, drained rolling restart), a rollback, a release that
    fails `manage.py check` and one whose daphne cannot start, while a reconnecting client,
    an HTTP prober and a sender run through nginx: every request answered, every
    notification once, and the bad releases leave the old one serving."""
    first = str(site.first_release)
    assert os.readlink(site.current) == first
    assert set(serving(site).values()) == {first}
    js_before = hashed_js(site)

    cookie = site.login("alice")
    sent = [site.send_inform("alice", "before the releases")]
    client = ResumingClient(site, cookie, sent[0])
    prober = HttpProber(site)
    sender = Sender(site, sent)
    client.start()
    assert client.connected.wait(10), "the client's socket did not open"
    prober.start()
    sender.start()
    outputs = {}
    try:
        # upgrade: a new folder, current -> it, previous -> the first, every process on it
        t = time.monotonic()
        watcher = site.supervisorctl("pid", "mblog-watch").stdout.strip()
        # new JavaScript, and a migration that follows the rule (the code before it ignores the table)
        latest = max(m.stem for m in (site.upstream / "inform" / "migrations").glob("0*.py"))
        migration = f"inform/migrations/{int(latest[:4]) + 1:04d}_release_probe.py"
        site.commit_upstream("the next release", "static/inform/inform.js", "\n// the next release\n", **{
            migration: "from django.db import migrations\n\n\nclass Migration(migrations.Migration):\n"
                       f"    dependencies = [('inform', '{latest}')]\n"
                       "    operations = [migrations.RunSQL('CREATE TABLE release_probe (id int)',\n"
                       "                                    'DROP TABLE release_probe')]\n"})
        r = site.guide("upgrade")
        outputs["install"] = r.stdout + r.stderr
        second = os.readlink(site.current)
        site.timings["release: install (upgrade)"] = time.monotonic() - t
        assert second != first and Path(second).parent == site.srv / "releases", second
        assert os.readlink(site.srv / "previous") == first
        assert os.readlink(Path(second) / "venv") == os.readlink(Path(first) / "venv")  # same lock, same venv
        assert set(serving(site).values()) == {second}
        # and the health watcher was restarted, so it runs the release's healthcheck.py
        assert site.supervisorctl("pid", "mblog-watch").stdout.strip() not in ("0", watcher)
        js_upgraded = hashed_js(site)
        assert js_upgraded != js_before  # the new release's JavaScript, under a new name

        # rollback: one command, the previous release serves again, with its own static names
        t = time.monotonic()
        r = site.guide("rollback")
        outputs["rollback"] = r.stdout + r.stderr
        site.timings["release: rollback"] = time.monotonic() - t
        assert "a release's migrations must work with the code before it" in r.stdout
        assert f"migrations {second} brought, which stay applied:\n    {migration[:-3].replace('/migrations/', '/')}\n" \
            in r.stdout, r.stdout
        assert os.readlink(site.current) == first and os.readlink(site.srv / "previous") == second
        assert set(serving(site).values()) == {first}
        assert hashed_js(site) == js_before

        # a release that fails `manage.py check`: refused before anything is switched
        pids = site.daphne_pids()
        t = time.monotonic()
        site.commit_upstream("a bad release", "mblog/urls.py", "\nraise RuntimeError('bad release')\n")
        r = site.guide("upgrade", check=False)
        outputs["bad check"] = r.stdout + r.stderr
        site.timings["release: refused by check"] = time.monotonic() - t
        assert r.returncode != 0 and "fails manage.py check or migrate: nothing switched" in r.stderr, outputs["bad check"]
        assert "RuntimeError: bad release" in r.stderr  # the check imported the broken URLconf
        assert os.readlink(site.current) == first and site.daphne_pids() == pids

        # a release whose daphne cannot start: the first process restarted on it fails, is
        # switched back and restarted on the old release; the other is never touched
        t = time.monotonic()
        site.upstream_git("revert", "--no-edit", "HEAD")
        site.commit_upstream("another bad release", "mblog/asgi.py", "\nraise RuntimeError('bad release')\n")
        r = site.guide("upgrade", check=False)
        outputs["bad start"] = r.stdout + r.stderr
        site.timings["release: failed start undone"] = time.monotonic() - t
        assert r.returncode != 0 and f"did not start: back on {first}" in r.stderr, outputs["bad start"]
        assert os.readlink(site.current) == first and os.readlink(site.srv / "previous") == second
        site.wait_healthy(range(PROCESSES))
        after = site.daphne_pids()
        assert after[0] != pids[0] and after[1] == pids[1], (pids, after)
        assert set(serving(site).values()) == {first}
        assert hashed_js(site) == js_before
        assert "RuntimeError: bad release" in site.daphne_log(0)
        sender.stopping.set()
        sender.join(30)
        sent.append(site.send_inform("alice", "after the releases"))
        wait_until(lambda: set(sent) <= client.seen, 15, "the client to receive everything")
    finally:
        sender.stopping.set()
        prober.stopping.set()
        client.stopping.set()
        for thread in (sender, prober, client):
            thread.join(30)
    listing = site.release("list").stdout
    figures = {"http ok": prober.ok, "http failed": len(prober.failures), "notifications": len(sent),
               "reconnects": len(client.reconnect_seconds), "failed reconnects": len(client.failed_connects),
               "close codes": sorted(set(client.close_codes), key=str)}
    site.figures["upgrade, rollback, 2 bad releases"] = figures
    print(f"\nreleases: {figures}; first failures: {prober.failures[:3]} {client.failed_connects[:3]}\n{listing}")
    assert sender.error is None and client.error is None, (sender.error, client.error)
    assert sorted(client.ids) == sorted(sent[1:]), (client.ids, sent)  # every one, none twice
    assert prober.ok > 0 and prober.failures == [], figures
    assert client.failed_connects == [], figures
    assert set(client.close_codes) == {1001}, figures
    assert f"-> {first}" in listing and f"<- {second}" in listing, listing


def test_nginx_holds_10000_connections_and_answers_unknown_hosts_with_nothing(site):
    # The shipped limits reached nginx's workers: open files and connections per worker.
    checked = 0
    for pid in children_of(site.nginx_pid):
        try:
            limits = Path(f"/proc/{pid}/limits").read_text()
        except FileNotFoundError:
            continue  # a worker of before the last reload, gone since
        assert int(re.search(r"(?m)^Max open files\s+(\d+)", limits).group(1)) >= MAX_OPEN_FILES, limits
        checked += 1
    assert checked, "no nginx worker to check"
    assert int(site.worker_connections()) > 10_000
    # 10,000 connections held open at once by two client processes, each answered by nginx
    # (worker_connections 768 reset everything past the first few hundred). Plain HTTP (the
    # redirect to HTTPS, kept alive): a connection costs nginx the same without TLS's CPU.
    per_client, t = 5_000, time.monotonic()
    clients = [subprocess.Popen(
        [sys.executable, "-m", "tests.holdsockets", str(site.http_port), SERVER_NAME, str(per_client), "/", "301"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) for _ in range(2)]
    try:
        opened = [c.stdout.readline() for c in clients]
        site.timings["10,000 connections opened"] = time.monotonic() - t
        for c in clients:
            c.stdin.write("check\n")
            c.stdin.flush()
        still_open = [c.stdout.readline() for c in clients]
    finally:
        for c in clients:
            try:
                c.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                c.kill()
    site.figures["connections through nginx"] = {"opened": opened, "still open": still_open}
    assert all(line.startswith(f"opened {per_client} ") for line in opened), opened
    assert still_open == [f"open {per_client}\n"] * 2, still_open
    errors = (site.log_dir / "nginx-error.log").read_text() + (site.log_dir / "nginx-main-error.log").read_text()
    assert "worker_connections are not enough" not in errors

    # An unknown Host header gets no answer (444) and never reaches daphne.
    before = [len(site.daphne_log(i)) for i in range(PROCESSES)]
    for port, scheme in ((site.http_port, "http"), (site.https_port, "https")):
        conn = (http.client.HTTPConnection("127.0.0.1", port, timeout=10) if scheme == "http" else
                http.client.HTTPSConnection("127.0.0.1", port, context=site.ssl_context(), timeout=10))
        conn.request("GET", "/accounts/login/", headers={"Host": "evil.example"})
        with pytest.raises(http.client.RemoteDisconnected):
            conn.getresponse()
        conn.close()
    response, _ = site.https("GET", "/healthz")  # a request that does reach daphne, to compare
    assert response.status == 200
    wait_until(lambda: any("/healthz" in site.daphne_log(i)[before[i]:] for i in range(PROCESSES)), 5, "healthz logged")
    assert not any("evil.example" in site.daphne_log(i) or "/accounts/login/" in site.daphne_log(i)[before[i]:]
                   for i in range(PROCESSES))


def test_the_watcher_restarts_a_hung_daphne(site):
    pids = site.daphne_pids()
    hung = 1
    os.kill(pids[hung], signal.SIGSTOP)  # takes connections (the kernel queues them), answers none
    try:
        wait_until(lambda: site.daphne_pids()[hung] not in (0, pids[hung]), 30, "the watcher to restart the hung daphne")
    finally:
        if pid_alive(pids[hung]):
            os.kill(pids[hung], signal.SIGCONT)
    site.wait_healthy([hung], timeout=30)
    assert site.daphne_pids()[0] == pids[0]
    log = (site.log_dir / "healthcheck.log").read_text()
    assert f"daphne-{hung}.sock hung" in log and f"signal KILL mblog-daphne-{hung}" in log, log


def test_nginx_logs_rotate_and_restarts_write_no_crit(site):
    # after the kill -9 and the rolling restart above (tests run in file order), and the
    # 10,000 connections: nginx logged no [crit] (a socket path that vanished would)
    for name in ("nginx-error.log", "nginx-main-error.log"):
        path = site.log_dir / name
        assert "[crit]" not in (path.read_text() if path.exists() else ""), name
    if not (site.is_root and shutil.which("logrotate")):
        pytest.skip("logrotate needs root and Debian's logrotate")
    conf = site.etc / "logrotate.d" / "mblog"  # as installed
    site.https("GET", "/accounts/login/")
    access = site.log_dir / "nginx-access.log"
    assert access.stat().st_size > 0
    run(["logrotate", "-f", "-s", str(site.tmp / "logrotate.state"), str(conf)])
    assert (site.log_dir / "nginx-access.log.1").exists()
    # nginx reopened its logs (USR1 from the postrotate script): a new request lands in a new file
    response, _ = site.https("GET", "/accounts/login/?after-rotation")
    assert response.status == 200
    wait_until(lambda: access.exists() and "after-rotation" in access.read_text(), 10, "nginx to write the new log")
    assert "after-rotation" not in (site.log_dir / "nginx-access.log.1").read_text()


TABLE_COUNTS = """SELECT string_agg(format('%s=%s', t, (xpath('/row/c/text()', query_to_xml(
    format('SELECT count(*) AS c FROM %I', t), false, true, '')))[1]::text), ',' ORDER BY t)
    FROM (SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public') tables"""


def test_backup_and_restore_into_an_empty_database(site):
    site.send_inform("alice", "in the backup")
    media_file = site.tmp / "media" / "avatars" / "alice.png"
    media_file.parent.mkdir(exist_ok=True)
    media_file.write_bytes(b"\x89PNG not really")
    out = site.guide("backup").stdout.strip()
    backup = Path(out.splitlines()[-1])
    assert backup.parent == site.tmp / "backups"
    assert sorted(p.name for p in backup.iterdir()) == ["db.dump", "mblog.env", "media.tar.gz"]
    assert oct(backup.stat().st_mode & 0o777) == oct(0o700)
    assert (backup / "mblog.env").read_bytes() == site.env_file.read_bytes()

    def counts(db):
        return run(["psql", f"{site.pg_base}/{db}", "-qtAc", TABLE_COUNTS]).stdout.strip()

    texts = "SELECT md5(string_agg(text, '|' ORDER BY id)) FROM inform_notification"

    def notification_texts(db):
        return run(["psql", f"{site.pg_base}/{db}", "-qtAc", texts]).stdout

    original = counts(site.db_name)
    rows = dict(pair.split("=") for pair in original.split(","))
    assert int(rows["mblog_user"]) > 0 and int(rows["inform_notification"]) > 0, original
    original_texts = notification_texts(site.db_name)

    # into an empty database: mblog-restore BACKUP DATABASE_URL
    restored_db = f"{site.db_name}_restored"
    psql = ["psql", f"{site.pg_base}/postgres", "-v", "ON_ERROR_STOP=1", "-qtAc"]
    run(psql + [f'CREATE DATABASE "{restored_db}"'])
    site.databases.append(restored_db)
    media_file.unlink()
    run([str(site.bin / "mblog-restore"), str(backup), f"{site.pg_base}/{restored_db}"], env=CLEAN_ENV)
    assert counts(restored_db) == original
    assert notification_texts(restored_db) == original_texts
    assert media_file.read_bytes() == b"\x89PNG not really"

    # the guide's block, over the site's own database: daphne stopped, restored, started
    site.send_inform("alice", "after the backup: the restore removes it")
    media_file.unlink()
    site.guide("restore", extra=[("/var/backups/mblog/mblog-20260101-030000", str(backup))])
    assert counts(site.db_name) == original
    assert notification_texts(site.db_name) == original_texts
    assert media_file.read_bytes() == b"\x89PNG not really"
    site.wait_healthy(range(PROCESSES))
    response, _ = site.https("GET", "/healthz")
    assert response.status == 200
    site.figures["backup and restore"] = {"tables": len(rows), "rows": sum(int(n) for n in rows.values())}


def test_every_block_of_the_guide_ran(site, request):
    """docs/deploy.md is a sequence of commands that ran: every block marked test:NAME ran above."""
    if request.config.option.keyword:
        pytest.skip("only a run of the whole file runs every block")
    assert set(GUIDE_BLOCKS) - GUIDE_RAN == set(), "blocks of docs/deploy.md no test ran"
    assert len(GUIDE_BLOCKS) >= 12
