"""Typed settings from environment variables, env-files and secret files.

Every setting has one canonical ``CDH_*`` name, optional IBM Core Dump Handler
aliases (with a value converter where IBM used other units), a default, and a
parser that turns the string into a typed value or says what is allowed.
A bad value fails with one line naming the variable, the value and the rule:

    CDH_COMPRESSION='gzip' is not valid: one of deflate, none, zstd

Stdlib-only: the composer imports this on every crash. Parsers that need an
agent dependency (cron) import it only when the value is set.

Two rules keep a setting from reaching further than its source should:

- a value is one line: surrounding white space is dropped and a line break or NUL inside a value
  is an error, so nothing can add a line to the ``composer.env`` the agent writes;
- settings that decide where root writes or what it runs on the node (``Spec.env_only``:
  ``CDH_HOST_DIR``, ``CDH_CORE_DIR``, ``CDH_EVENT_DIR``, ``CDH_CRICTL_PATH``, ``CDH_RUNTIME_DIR``)
  come from the DaemonSet's environment only, never from ``CDH_CONFIG_FILE``: whoever may edit
  that ConfigMap is not thereby root on every node.
"""

from __future__ import annotations

import os

from cdh.config import ibm
from cdh.config.envfile import parse_env_text, quote, read_env_file
from cdh.config.table import BY_ALIAS, BY_NAME, IGNORED, SECRET_FILE_SUFFIX, SPECS
from cdh.config.values import ConfigError, endpoint_url

TYPE_CHECKING = False  # typing costs the composer ~6 ms to import
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any


# CDH_* names that belong to the test and build tooling, not to cdh's settings.
NOT_SETTINGS = ("CDH_REQUIRE_KERNEL", "CDH_TEST_", "CDH_BENCH_", "CDH_DEBUG", "CDH_FUZZ_")
_LINE_BREAKS = frozenset("\n\r\0")


class Settings:
    """Validated settings. Build with :func:`load`; attributes follow :data:`SPECS`."""

    def __init__(self, values: Mapping[str, Any], raw: Mapping[str, str],
                 sources: Mapping[str, str], notes: tuple[str, ...] = (),
                 files: Mapping[str, str] | None = None) -> None:
        self.values = dict(values)    # attr → typed value
        self.raw = dict(raw)          # attr → the string it was parsed from
        self.sources = dict(sources)  # attr → the env name it came from
        self.notes = notes            # things to say once at start
        self.files = dict(files or {})  # attr → the file a *_FILE names (read or absent): watched for changes

    def __getattr__(self, attr: str) -> Any:
        try:
            return self.values[attr]
        except KeyError:
            raise AttributeError(attr) from None

    @property
    def secrets(self) -> tuple[str, ...]:
        """Secret values set, for log redaction."""
        return tuple(self.values[s.attr] for s in SPECS if s.secret and self.values.get(s.attr))

    @property
    def has_trigger(self) -> bool:
        """Whether anything makes the agent upload (inotify, an interval, a schedule)."""
        return any(self.values.get(attr) for attr in ("use_inotify", "interval_s", "schedule"))

    def env_name(self, attr: str) -> str:
        return self.sources.get(attr) or next(s.name for s in SPECS if s.attr == attr)


def load(layers: Iterable[Mapping[str, str]], scope: str = "agent") -> Settings:
    """Merge ``layers`` (later wins) and validate.

    Only names cdh knows are read: ``CDH_*`` (a typo is an error), IBM aliases,
    and ``CDH_*_FILE`` for secrets. ``scope="composer"`` parses only what the
    composer uses (host + composer settings), so it never imports agent code.
    """
    raw: dict[str, tuple[Any, str]] = {}  # attr → (value, env name)
    notes: list[str] = []
    files: dict[str, str] = {}
    absent: dict[str, str] = {}  # *_FILE names whose file is not there → the path
    web_identity = False  # AWS_WEB_IDENTITY_TOKEN_FILE set (IRSA): IBM's agent then ignored its keys
    for layer in layers:
        # Aliases first, so a canonical name in the same layer wins over its alias.
        for name in sorted(layer, key=lambda n: n.startswith("CDH_")):
            value = layer[name]
            if name == WEB_IDENTITY:
                web_identity = bool(value.strip())
            if name in BY_ALIAS:
                spec, conv = BY_ALIAS[name]
                _set(raw, spec.attr, (_convert(name, value, conv, notes), name), notes)
            elif name in BY_NAME:
                _set(raw, BY_NAME[name].attr, (value, name), notes)
            elif name.endswith(SECRET_FILE_SUFFIX) and name[: -len(SECRET_FILE_SUFFIX)] in BY_NAME:
                spec = BY_NAME[name[: -len(SECRET_FILE_SUFFIX)]]
                if not spec.secret:
                    raise ConfigError(f"{name} is not valid: only secret settings can be read from files")
                files[spec.attr] = value
                content = _read_secret_file(name, value)
                if content is None:
                    absent[name] = value
                else:
                    _set(raw, spec.attr, (content, name), notes)
                    absent.pop(name, None)
            elif name in IGNORED:
                notes.append(f"{name} is ignored: {IGNORED[name]}")
            elif name.startswith("CDH_") and not name.startswith(NOT_SETTINGS):
                raise ConfigError(_unknown(name))
    if absent:  # an optional Secret that was not created (IRSA, Pod Identity, Workload Identity)
        notes.append(f"{', '.join(f'{n}={p!r}' for n, p in absent.items())}: no such file, so "
                     f"{', '.join(n.removesuffix(SECRET_FILE_SUFFIX) for n in absent)} not set (an optional "
                     "Secret not created?); the credential chain is used")
    if scope != "composer":
        _ibm_s3_location(raw, notes)
        _ibm_triggers(raw, notes)
        _ibm_credentials(raw, notes, web_identity)
    values: dict[str, Any] = {}
    strings: dict[str, str] = {}
    sources: dict[str, str] = {}
    for spec in SPECS:
        if scope == "composer" and spec.scope == "agent":
            continue
        value, source = raw.get(spec.attr, (None, spec.name))
        if value is None:
            value = spec.default(values) if callable(spec.default) else spec.default
        if not isinstance(value, str):  # typed by its IBM converter: cdh's syntax cannot say it
            values[spec.attr], strings[spec.attr], sources[spec.attr] = value, str(value), source
            continue
        if not spec.secret:
            value = value.strip()  # every parser ignores it; composer.env must not carry it
        try:
            if not spec.secret and _LINE_BREAKS.intersection(value):
                raise ValueError("one line: a line break or NUL is not allowed in a value")
            values[spec.attr] = spec.parse(value)
        except ValueError as err:
            shown = "<hidden>" if spec.secret else repr(value)
            raise ConfigError(f"{source}={shown} is not valid: {err}") from None
        strings[spec.attr] = value
        sources[spec.attr] = source
    _check_together(values, sources)
    return Settings(values=values, raw=strings, sources=sources, notes=tuple(dict.fromkeys(notes)),
                    files=files)


def _set(raw: dict[str, tuple[Any, str]], attr: str, entry: tuple[Any, str], notes: list[str]) -> None:
    """``raw[attr] = entry``; a value replaced under another name is said (every value explained)."""
    old = raw.get(attr)
    if old is not None and old[1] != entry[1]:
        notes.append(f"{old[1]} is overridden by {entry[1]}")
    raw[attr] = entry


def _convert(name: str, value: str, conv: Callable[[str], Any] | None, notes: list[str]) -> Any:
    """An IBM value in cdh's terms; a converter may return ``(value, note)`` (the note is kept)."""
    if conv is None:
        return value
    try:
        out = conv(value)
    except ValueError as err:
        raise ConfigError(f"{name}={value!r} is not valid: {err}") from None
    if isinstance(out, tuple):
        out, note = out
        if note:
            notes.append(f"{name}={value!r}: {note}")
    return out


def _ibm_s3_location(raw: dict[str, tuple[Any, str]], notes: list[str]) -> None:
    """IBM's ``S3_REGION`` may name a host (IBM COS, ODF, MinIO): then it is the endpoint. A store
    named by IBM's settings is addressed path-style, as IBM's agent always did (unless
    CDH_S3_ADDRESSING says otherwise)."""
    value, source = raw.get("s3_region", ("", ""))
    if source == "S3_REGION" and value.strip():
        endpoint = raw.get("s3_endpoint", ("", ""))[0].strip() or None
        try:
            signing, url, note = ibm.s3_location(value, endpoint)
        except ValueError as err:
            raise ConfigError(f"S3_REGION={value!r} is not valid: {err}") from None
        raw["s3_region"] = (signing, source)
        if url != endpoint:
            try:
                endpoint_url(url)
            except ValueError as err:
                raise ConfigError(f"S3_REGION={value!r} is not valid: {err}") from None
            raw["s3_endpoint"] = (url, source)
        if note:
            notes.append(f"S3_REGION={value!r}: {note}")
    endpoint, source = raw.get("s3_endpoint", ("", ""))
    if source in ("S3_REGION", "S3_ENDPOINT") and endpoint.strip() and "s3_addressing" not in raw:
        raw["s3_addressing"] = ("path", source)


WEB_IDENTITY = "AWS_WEB_IDENTITY_TOKEN_FILE"
IBM_KEYS = {"s3_access_key": "S3_ACCESS_KEY", "s3_secret_key": "S3_SECRET"}


def _ibm_credentials(raw: dict[str, tuple[Any, str]], notes: list[str], web_identity: bool) -> None:
    """IBM's agent signed with the web identity role (IRSA) whenever AWS_WEB_IDENTITY_TOKEN_FILE was set,
    whatever its keys said (its chart's placeholder keys, ``XXX``, are often still there), and with the
    credential chain when only one of its two keys was set. Keys set by IBM's names mean the same in
    cdh; keys set by ``CDH_*`` names keep cdh's rules (static keys win; one alone is an error)."""
    given = {attr: raw[attr][1] for attr in IBM_KEYS if attr in raw and str(raw[attr][0]).strip()}
    if not given or any(source != IBM_KEYS[attr] for attr, source in given.items()):
        return
    if web_identity:
        why = (f"{WEB_IDENTITY} is set, and IBM's agent then used the web identity role (IRSA) "
               "whatever its keys said; so does cdh")
    elif len(given) == 1:
        (attr,) = given
        other = next(name for a, name in IBM_KEYS.items() if a != attr)
        why = f"{other} is not set, and IBM's agent then used the credential chain; so does cdh"
    else:
        return
    for attr in given:
        del raw[attr]
    notes.append(f"{' and '.join(given.values())} not used: {why}")


def _ibm_triggers(raw: dict[str, tuple[Any, str]], notes: list[str]) -> None:
    """IBM's agent did not watch CORE_DIR when INTERVAL or SCHEDULE was set: say that cdh does."""
    inotify, source = raw.get("use_inotify", ("", ""))
    timed = [v[1] for attr in ("interval_s", "schedule") if (v := raw.get(attr)) and str(v[0]).strip()]
    if source == "USE_INOTIFY" and timed and inotify.strip().lower() == "true":
        notes.append(f"USE_INOTIFY=true with {' and '.join(timed)}: IBM's agent then only swept on the "
                     "schedule; cdh also uploads each zip as it appears (USE_INOTIFY=false for IBM's way)")


def _read_secret_file(name: str, path: str) -> str | None:
    """The file's content; None when it is absent from a directory that exists: an optional Secret
    that was not created (IRSA, Pod Identity, Workload Identity use no static keys) means unset."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError as err:
        if os.path.isabs(path) and os.path.isdir(os.path.dirname(path)):
            return None
        problem = err.strerror
    except OSError as err:
        problem = err.strerror
    raise ConfigError(f"{name}={path!r} is not valid: cannot read the file ({problem})")


def _unknown(name: str) -> str:
    try:
        import difflib  # only on the error path
    except ImportError:  # the composer's host runtime carries only what its normal path imports
        close = []
    else:
        close = difflib.get_close_matches(name, list(BY_NAME), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"{name} is not a cdh setting{hint}"


def _check_together(values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    if "s3_access_key" in values and bool(values["s3_access_key"]) != bool(values["s3_secret_key"]):
        missing = "s3_secret_key" if values["s3_access_key"] else "s3_access_key"
        raise ConfigError(f"{sources[missing]} is not set: static keys need both access key and secret")
    if values.get("s3_sse") != "aws:kms" and values.get("s3_sse_kms_key_id"):
        raise ConfigError(f"{sources['s3_sse_kms_key_id']} is set but CDH_S3_SSE is not aws:kms")
    if "retry_min_s" in values and values["retry_min_s"] > values["retry_max_s"]:
        raise ConfigError(f"{sources['retry_min_s']} is not valid: must not exceed CDH_RETRY_MAX")


# ---------------------------------------------------------------- env-files


def render_env(settings: Settings, scope: str = "composer") -> str:
    """The env-file the agent writes for the composer: canonical names, double-quoted, one line each
    (:func:`load` refuses a line break in a value; this refuses it again, should one get here)."""
    lines = ["# Written by the cdh agent; edits are overwritten. Settings of the composer."]
    for spec in SPECS:
        if spec.scope in ("host", scope) and spec.attr in settings.raw:
            value = settings.raw[spec.attr]
            if _LINE_BREAKS.intersection(value):
                raise ConfigError(f"{spec.name} holds a line break: not written to composer.env")
            lines.append(f'{spec.name}="{quote(value)}"')
    return "\n".join(lines) + "\n"


def describe() -> list[tuple[str, str, str, str]]:
    """(name, IBM aliases, default, meaning) rows for docs and ``cdh config --list``."""
    rows = []
    for s in SPECS:
        default = s.default.shown if callable(s.default) else s.default
        also = f" Also read from {', '.join(s.also)}." if s.also else ""
        only = " Environment only (never `CDH_CONFIG_FILE`)." if s.env_only else ""
        rows.append((s.name, ", ".join(a for a, _ in s.aliases), default, s.doc + also + only))
    return rows


def markdown_table() -> str:
    """The settings as the README's Configuration table (a test keeps the README in step)."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|") if text else ""

    lines = ["| setting | IBM name | default | meaning |", "|---|---|---|---|"]
    for name, aliases, default, doc in describe():
        shown = f"`{default}`" if default else ""
        ibm = ", ".join(f"`{a}`" for a in aliases.split(", ") if a)
        lines.append(f"| `{name}` | {ibm} | {cell(shown)} | {cell(doc)} |")
    return "\n".join(lines)


def from_environment(scope: str = "agent", environ: Mapping[str, str] | None = None) -> Settings:
    """Environment, overlaid by ``CDH_CONFIG_FILE`` when set (the mounted file wins, so reload works)."""
    env = dict(os.environ if environ is None else environ)
    layers: list[Mapping[str, str]] = [env]
    cfg = env.get("CDH_CONFIG_FILE", "").strip()
    if cfg and scope != "composer":
        layers.append(_config_file(cfg))
    return load(layers, scope=scope)


def _config_file(path: str) -> dict[str, str]:
    """``CDH_CONFIG_FILE``'s settings; ConfigError for one that only the environment may set."""
    layer = read_env_file(path)
    for name in layer:
        spec = BY_NAME.get(name) or BY_ALIAS.get(name, (None,))[0]
        if spec is not None and spec.env_only:
            raise ConfigError(f"{name} in {path} is not allowed: it decides where root writes or what it "
                              "runs on the node, so it is taken from the DaemonSet's environment only")
    return layer


__all__ = ["SPECS", "ConfigError", "Settings", "from_environment", "load", "parse_env_text",
           "read_env_file", "render_env"]
