"""The one KEY=VALUE env-file parser: settings read .env with it, deploy/envexec.py
loads the production env file with it, deploy/render.py reads its values file with it.

Standard library only (envexec runs it before Django is importable). The format is the
common subset of systemd's EnvironmentFile=, Docker's --env-file and a shell's:

- blank lines and lines starting with `#` are skipped; `export ` before a key is allowed;
- a value is taken literally: no `$` expansion and no escapes, so a secret may hold any
  character (`$`, `\\`, `#`, quotes);
- a value in single or double quotes keeps everything between them, `#` and spaces too;
  after the closing quote only a comment may follow;
- an unquoted value ends at ` #` (whitespace, then `#`): the rest is a comment. A `#`
  with no whitespace before it belongs to the value (`a#b`).
"""

import re

_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$")
_COMMENT = re.compile(r"\s+#.*$")


class EnvFileError(ValueError):
    pass


def parse_lines(lines, name: str = "<env>") -> dict[str, str]:
    values = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            raise EnvFileError(f"{name}:{number}: not KEY=VALUE: {line!r}")
        key, value = m.groups()
        quote = value.lstrip()[:1]
        if quote in ("'", '"'):
            value = value.lstrip()
            end = value.find(quote, 1)
            rest = value[end + 1 :].lstrip() if end > 0 else ""
            if end < 0 or rest[:1] not in ("", "#"):
                raise EnvFileError(f"{name}:{number}: {key}: unterminated quote or text after the closing quote")
            value = value[1:end]
        else:
            value = _COMMENT.sub("", value).strip()
        values[key] = value
    return values


def parse(path) -> dict[str, str]:
    with open(path, encoding="utf-8") as f:
        return parse_lines(f, str(path))
