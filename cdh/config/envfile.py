"""Env-files: the mounted ConfigMap the agent reads and the composer.env it writes."""

from __future__ import annotations

import re

from cdh.config.values import ConfigError


def read_env_file(path: str) -> dict[str, str]:
    """Parse a ``KEY=VALUE`` file (``#`` comments, ``export``, single or double quotes)."""
    try:
        with open(path, encoding="utf-8") as f:
            text_ = f.read()
    except OSError as err:
        raise ConfigError(f"cannot read env-file {path}: {err.strerror}") from None
    except UnicodeDecodeError as err:  # a ValueError, not a ConfigError: the composer would lose the core
        raise ConfigError(f"cannot read env-file {path}: not UTF-8 at byte {err.start}") from None
    return parse_env_text(text_, path)


_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def parse_env_text(content: str, origin: str = "<env>") -> dict[str, str]:
    out: dict[str, str] = {}
    for n, line in enumerate(content.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _ENV_LINE.match(line)
        if not m:
            raise ConfigError(f"{origin}:{n}: not KEY=VALUE")
        key, value = m.group(1), m.group(2)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
            if m.group(2)[0] == '"':
                value = re.sub(r'\\(["\\$`])', r"\1", value)
        elif value and value[0] in "'\"":  # ("" is in every string: `KEY=` is an empty value)
            raise ConfigError(f"{origin}:{n}: unterminated quote in {key}")
        out[key] = value
    return out


def quote(s: str) -> str:
    return re.sub(r'(["\\$`])', r"\\\1", s)
