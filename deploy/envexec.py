#!/usr/bin/env python3
"""envexec ENV_FILE COMMAND [ARG...]: load ENV_FILE into the environment, then exec COMMAND.

One parser for supervisor, systemd, operators' shells and the settings' .env alike
(mblog/envfile.py: KEY=VALUE lines, `#` comments, optional `export `, values taken
literally, so a secret key may hold any character). Values from the file win over the
inherited environment, as with systemd's EnvironmentFile=.
exec replaces this process, so supervisor/systemd signal the real server.

COMMAND's folder is resolved first (APP_DIR/venv/bin -> VENVS_DIR/<lock hash>/bin): a
process keeps the release's packages it started with when mblog-release moves the
`current` link, instead of importing a later one's lazily (the working directory, from
supervisor's `directory=` / systemd's `WorkingDirectory=`, is resolved at start anyway).
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mblog.envfile import EnvFileError, parse  # noqa: E402  (the app's directory, not an installed package)


def main(argv: list[str]) -> None:
    if len(argv) < 3:
        raise SystemExit("usage: envexec.py ENV_FILE COMMAND [ARG...]")
    try:
        os.environ.update(parse(argv[1]))
    except (OSError, EnvFileError) as exc:
        raise SystemExit(f"envexec: {exc}") from None
    command = argv[2]
    if os.sep in command:
        command = os.path.join(os.path.realpath(os.path.dirname(command)), os.path.basename(command))
    os.execvp(command, [command, *argv[3:]])


if __name__ == "__main__":
    main(sys.argv)
