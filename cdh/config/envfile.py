"""Env-files: the mounted ConfigMap the agent reads and the composer.env it writes.

The agent's ConfigMap is read strictly (:func:`read_env_file`): a bad edit is rejected whole at a
reload and the previous settings kept. The composer reads composer.env leniently
(``errors=[]``): it runs for a crash that will not come again, so one bad line (or one byte that
is not UTF-8) costs that line, reported with its number, never the rest of the file (a CORE_DIR
the agent does not watch).
"""

from __future__ import annotations

import os
import re
import stat

from cdh.config.values import ConfigError

MAX_ENV_FILE = 1 << 20


def read_env_file(path: str, errors: list[str] | None = None) -> dict[str, str]:
    """Parse a ``KEY=VALUE`` file (``#`` comments, ``export``, single or double quotes).

    Strict: ConfigError for the first bad line. With ``errors`` (a list): each bad line is skipped
    and its error appended; only an unreadable file raises."""
    try:
        data = _read(path)
    except OSError as err:
        raise ConfigError(f"cannot read env-file {path}: {err.strerror}") from None
    if errors is None:
        try:
            text_ = data.decode("utf-8")
        except UnicodeDecodeError as err:  # a ValueError, not a ConfigError: the composer would lose the core
            raise ConfigError(f"cannot read env-file {path}: not UTF-8 at byte {err.start}") from None
        return parse_env_text(text_, path)
    return parse_env_text(data.decode("utf-8", "surrogateescape"), path, errors)


def _read(path: str) -> bytes:
    """The file's bytes; never blocks on a FIFO, never reads more than MAX_ENV_FILE."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(0, "not a regular file")
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(MAX_ENV_FILE)
    finally:
        os.close(fd)


_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def parse_env_text(content: str, origin: str = "<env>", errors: list[str] | None = None) -> dict[str, str]:
    """Strict (ConfigError), or with ``errors``: bad lines skipped and listed (see read_env_file)."""
    out: dict[str, str] = {}
    # "\n" only, as render_env writes lines: splitlines() would also split at U+2028 or \x1e inside a
    # value, and let it add a line. A "\r" before the "\n" is white space to the pattern.
    for n, line in enumerate(content.split("\n"), 1):
        try:
            found = _parse_line(line, f"{origin}:{n}")
        except ConfigError as err:
            if errors is None:
                raise
            errors.append(str(err))
            continue
        if found is not None:
            out[found[0]] = found[1]
    return out


_UNDECODED = re.compile("[\udc80-\udcff]")  # surrogateescape's stand-ins for bytes that are not UTF-8


def _parse_line(line: str, where: str) -> tuple[str, str] | None:
    if _UNDECODED.search(line):
        raise ConfigError(f"{where}: not UTF-8")
    if not line.strip() or line.lstrip().startswith("#"):
        return None
    m = _ENV_LINE.match(line)
    if not m:
        raise ConfigError(f"{where}: not KEY=VALUE")
    key, value = m.group(1), m.group(2)
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
        if m.group(2)[0] == '"':
            value = re.sub(r'\\(["\\$`])', r"\1", value)
    elif value and value[0] in "'\"":  # ("" is in every string: `KEY=` is an empty value)
        raise ConfigError(f"{where}: unterminated quote in {key}")
    return key, value


def quote(s: str) -> str:
    return re.sub(r'(["\\$`])', r"\\\1", s)
