#!/usr/bin/env python3
"""envexec ENV_FILE COMMAND [ARG...]: load ENV_FILE into the environment, then exec COMMAND.

One parser for supervisor, systemd and operators' shells alike: KEY=VALUE lines, `#`
comments, optional `export `, values optionally in single or double quotes (taken
literally: no `$` expansion, so a secret key may hold any character). Values from the
file win over the inherited environment, as with systemd's EnvironmentFile=.
exec replaces this process, so supervisor/systemd signal the real server.
"""

import os
import re
import sys

LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def parse(path: str) -> dict[str, str]:
    values = {}
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            m = LINE.match(line)
            if not m:
                raise SystemExit(f"envexec: {path}:{number}: not KEY=VALUE: {line!r}")
            key, value = m.groups()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            elif " #" in value:  # trailing comment after an unquoted value
                value = value.split(" #", 1)[0].rstrip()
            values[key] = value
    return values


def main(argv: list[str]) -> None:
    if len(argv) < 3:
        raise SystemExit("usage: envexec.py ENV_FILE COMMAND [ARG...]")
    os.environ.update(parse(argv[1]))
    os.execvp(argv[2], argv[2:])


if __name__ == "__main__":
    main(sys.argv)
