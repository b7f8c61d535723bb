"""One env-file parser (mblog/envfile.py) for the settings' .env, deploy/envexec.py and
deploy/render.py, checked against the files we ship and against tricky values."""

import json
import subprocess
import sys

import pytest

from mblog.envfile import EnvFileError, parse, parse_lines

from .conftest import ROOT

CLEAN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


@pytest.mark.parametrize(
    "line, value",
    [
        ("K=plain", "plain"),
        ("K = spaced  ", "spaced"),
        ("export K=exported", "exported"),
        ("K=0  # trailing comment", "0"),
        ("K=0\t# tab before the comment", "0"),
        ("K=a#b", "a#b"),  # no whitespace before `#`: part of the value
        ("K=#starts-with-hash", "#starts-with-hash"),
        ("K= # only a comment", ""),
        ("K=", ""),
        ('K="quoted # not a comment"', "quoted # not a comment"),
        ('K="quoted" # comment after the quote', "quoted"),
        ("K='single $HOME and \\n'", "single $HOME and \\n"),
        ("K=$ecret$with$dollars", "$ecret$with$dollars"),
        ("K=p@ss!w0rd%^&*()", "p@ss!w0rd%^&*()"),
        ("K=it's", "it's"),
        ('K="  spaces kept  "', "  spaces kept  "),
        ("K=postgres://u:p$w#d@127.0.0.1:5432/db", "postgres://u:p$w#d@127.0.0.1:5432/db"),
    ],
)
def test_values(line, value):
    assert parse_lines(["# a comment", "", line]) == {"K": value}


@pytest.mark.parametrize("line", ["no equals sign", "1K=starts with a digit", 'K="unterminated', "K='a' b"])
def test_malformed_lines_name_the_line(line):
    with pytest.raises(EnvFileError, match=r"x\.env:2"):
        parse_lines(["OK=1", line], "x.env")


def settings_with_env_file(env_file, **env) -> dict:
    """Load mblog.settings in a fresh process with only env_file (and env) configured."""
    code = (
        "import json, django; from django.conf import settings; django.setup(); "
        "db = settings.DATABASES['default']; "
        "print(json.dumps({'DEBUG': settings.DEBUG, 'SECRET_KEY': settings.SECRET_KEY, "
        "'ALLOWED_HOSTS': settings.ALLOWED_HOSTS, 'CONN_MAX_AGE': db['CONN_MAX_AGE'], 'DB_NAME': db['NAME'], "
        "'DB_PASSWORD': db.get('PASSWORD'), 'WS_RATE_BURST': settings.WS_RATE_BURST, "
        "'SECURE': settings.SESSION_COOKIE_SECURE, 'LAYER': settings.CHANNEL_LAYERS['default']['BACKEND']}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**CLEAN_ENV, "DJANGO_SETTINGS_MODULE": "mblog.settings", "DJANGO_ENV_FILE": str(env_file), **env},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.slow  # starts Django in a process of its own
def test_settings_load_the_shipped_env_example():
    """`cp .env.example .env` must give working settings (it crashed on a trailing comment)."""
    s = settings_with_env_file(ROOT / ".env.example")
    assert s["DEBUG"] is False and s["SECRET_KEY"] == "change-me-to-50-random-characters"
    assert s["ALLOWED_HOSTS"] == ["mblog.example.com"] and s["CONN_MAX_AGE"] == 0
    assert s["DB_NAME"] == "mblog" and s["WS_RATE_BURST"] == 20 and s["SECURE"] is True
    assert s["LAYER"] == "realtime.layers.ShardedPubSubChannelLayer"  # the Redis pub/sub layer over REDIS_URL's servers


@pytest.mark.slow  # starts Django in a process of its own
def test_settings_take_secrets_literally_and_the_environment_wins(tmp_path):
    env_file = tmp_path / "mblog.env"
    env_file.write_text(
        "export DJANGO_SECRET_KEY='$tarts-with-dollar#and-hash'\n"
        "DATABASE_URL=postgres://mblog:pa$$word@127.0.0.1:5432/site  # the database\n"
        "DJANGO_DEBUG=0\n"
        "WS_RATE_BURST=7\n"
    )
    s = settings_with_env_file(env_file, WS_RATE_BURST="9")
    assert s["SECRET_KEY"] == "$tarts-with-dollar#and-hash"
    assert (s["DB_NAME"], s["DB_PASSWORD"]) == ("site", "pa$$word")
    assert s["WS_RATE_BURST"] == 9


@pytest.mark.slow  # starts Django in a process of its own
def test_a_named_env_file_that_is_missing_is_an_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, capture_output=True, text=True,
        env={**CLEAN_ENV, "DJANGO_SETTINGS_MODULE": "mblog.settings", "DJANGO_ENV_FILE": str(tmp_path / "nope")},
        timeout=60,
    )
    assert result.returncode != 0 and "DJANGO_ENV_FILE" in result.stderr


@pytest.mark.slow  # starts Django in a process of its own
def test_deploy_values_example_renders_an_env_file_that_settings_and_envexec_read(tmp_path):
    rendered = tmp_path / "out"
    subprocess.run(
        [sys.executable, "deploy/render.py", "deploy/values.example", str(rendered)],
        cwd=ROOT, check=True, capture_output=True, env=CLEAN_ENV, timeout=60,
    )
    values = parse(ROOT / "deploy/values.example")
    env = parse(rendered / "mblog.env")
    assert env["DATABASE_URL"] == values["DATABASE_URL"] and len(env["DJANGO_SECRET_KEY"]) >= 50
    s = settings_with_env_file(rendered / "mblog.env")
    assert s["SECRET_KEY"] == env["DJANGO_SECRET_KEY"] and s["ALLOWED_HOSTS"] == [values["SERVER_NAME"]]
    # envexec puts the same values into the environment of what it execs
    out = subprocess.run(
        [sys.executable, "deploy/envexec.py", str(rendered / "mblog.env"), sys.executable, "-c",
         "import json, os; print(json.dumps(dict(os.environ)))"],
        cwd=ROOT, capture_output=True, text=True, env=CLEAN_ENV, timeout=60, check=True,
    )
    assert {k: v for k, v in json.loads(out.stdout).items() if k in env} == env


def test_envexec_refuses_a_malformed_file_without_a_traceback(tmp_path):
    bad = tmp_path / "bad.env"
    bad.write_text("GOOD=1\nthis is not a setting\n")
    result = subprocess.run(
        [sys.executable, "deploy/envexec.py", str(bad), "true"], cwd=ROOT, capture_output=True, text=True,
        env=CLEAN_ENV, timeout=60,
    )
    assert result.returncode != 0 and "bad.env:2" in result.stderr and "Traceback" not in result.stderr
