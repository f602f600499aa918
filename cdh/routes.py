"""Routes: which destination each namespace's cores go to (``CDH_ROUTES_FILE``), with that team's own
credentials and, optionally, encrypted to that team's age recipients (cdh/agecrypt.py).

The file is YAML (a ConfigMap), reloaded with the rest of the config::

    routes:
      - name: team-a                          # [a-z0-9._-]; in logs, metrics and object metadata
        namespaces: [team-a, "team-a-*"]      # exact names and globs; the first route that matches wins
        destination: s3://team-a-cores/prefix/ # or gs://bucket[/prefix], azblob://container[/prefix]
        endpoint: https://s3.example.com      # optional; s3: region, addressing, ca_bundle, verify_tls too
        credentials: /etc/cdh/routes/team-a   # optional: a mounted Secret (KEY_FILES: by the kind)
        recipients: [age1...]                 # optional: the zip is encrypted to these before it leaves
        key_prefix: "{namespace}/{date}/"     # optional; s3: sse, sse_kms_key_id, storage_class too
      - name: team-c
        namespaces: [team-c]
        destination: azblob://cores/          # azblob: account (default: CDH_AZURE_ACCOUNT's) too
        account: teamccores
        credentials: /etc/cdh/routes/team-c   # one of connection-string, account-key, sas
    default: main      # a namespace no route names: main (CDH_S3_BUCKET ...), keep (on the node) or drop
    unknown: keep      # a crash whose namespace the composer could not learn (default: as ``default``)

What a route does not say, and why:

- the connection: the main settings of the destination's kind, field by field (the same store, another
  bucket): s3: ``CDH_S3_ENDPOINT``, region, addressing, CA bundle, TLS verification; gs:
  ``CDH_GCS_ENDPOINT`` or the emulator; azblob: ``CDH_AZURE_ACCOUNT`` (a route's connection string
  names its own), ``CDH_AZURE_ENDPOINT`` for that account, ``CDH_AZURE_CHECKSUM``.
- credentials: the platform's credential chain (s3: IRSA, Pod Identity, the node's role; gs:
  Application Default Credentials; azblob: Entra ID tokens), never the main destination's keys: a
  route's authority is what its own Secret (or role) grants, nothing it inherits unseen.
- SSE and storage class: none (the bucket's own defaults); the main destination's KMS key is the
  platform's, not the team's. key_prefix: ``CDH_S3_KEY_PREFIX`` (so ``cdh ls`` finds the same layout).

A file that does not parse or does not check out (an unknown key, a bad glob or recipient, a missing
credentials directory or key file) is refused as a whole with one line naming the file, the line
and the field (:class:`~cdh.config.ConfigError`); the agent keeps the routes it had.

Stdlib, plus PyYAML (imported when a file is read) and pyrage (when recipients are checked).
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field

from cdh.config.table import KEY_PREFIX_VARIABLES
from cdh.config.values import ConfigError, choice, destination_url, endpoint_url, parse_bool, template
from cdh.destination import AZBLOB, GS, S3

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cdh.config import Settings
    from cdh.destination import Destination

MAIN, KEEP, DROP = "main", "keep", "drop"
FALLBACKS = (MAIN, KEEP, DROP)
ACCESS_KEY_FILE, SECRET_KEY_FILE, SESSION_TOKEN_FILE = "access-key", "secret-key", "session-token"
CONNECTION_STRING_FILE, ACCOUNT_KEY_FILE, SAS_FILE = "connection-string", "account-key", "sas"
GCS_KEY_FILE = "key.json"  # a service account key or workload identity federation file, as GKE's docs name it
# The files a route's credentials directory may hold, by the destination's kind: s3 needs both keys;
# azblob exactly one of its three; gs its one file.
KEY_FILES = {S3: (ACCESS_KEY_FILE, SECRET_KEY_FILE, SESSION_TOKEN_FILE),
             AZBLOB: (CONNECTION_STRING_FILE, ACCOUNT_KEY_FILE, SAS_FILE),
             GS: (GCS_KEY_FILE,)}
MAX_FILE_BYTES = 1 << 20          # a routes file is a few KiB; more is a mistake (or a YAML bomb)
MAX_RECIPIENTS = 32               # their fingerprints go into object metadata (S3: 2 KiB in all)
_NAME = re.compile(r"[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?")
_NAMESPACE_GLOB = re.compile(r"[a-z0-9*?\[\]!-]{1,63}")
TOP_KEYS = ("routes", "default", "unknown")
ROUTE_KEYS = ("name", "namespaces", "destination", "endpoint", "region", "addressing", "ca_bundle",
              "verify_tls", "account", "credentials", "recipients", "key_prefix", "sse", "sse_kms_key_id",
              "storage_class")
# Fields that mean something for one kind of destination only; given for another, the file is refused.
KIND_KEYS = {"region": S3, "addressing": S3, "ca_bundle": S3, "verify_tls": S3, "sse": S3,
             "sse_kms_key_id": S3, "storage_class": S3, "account": AZBLOB}
_ACCOUNT = re.compile(r"[a-z0-9]{3,24}")
_key_prefix = template(KEY_PREFIX_VARIABLES)
_addressing = choice("auto", "path", "virtual")
_sse = choice("none", "AES256", "aws:kms", aliases={"sse-s3": "AES256", "sse-kms": "aws:kms"})


@dataclass(frozen=True)
class Credentials:
    """What a route's mounted Secret holds, by the destination's kind (never shown: repr hides it)."""

    directory: str
    access_key: str = field(default="", repr=False)          # s3
    secret_key: str = field(default="", repr=False)
    session_token: str = field(default="", repr=False)
    connection_string: str = field(default="", repr=False)   # azblob: one of these three
    account_key: str = field(default="", repr=False)
    sas: str = field(default="", repr=False)
    key_file: str = ""                                       # gs: the path of key.json (read by google-auth)


@dataclass(frozen=True)
class Route:
    name: str
    namespaces: tuple[str, ...]
    bucket: str                               # bucket (s3, gs) or container (azblob)
    prefix: str = ""                          # the destination URL's path: "" or ending in "/"
    kind: str = S3                            # the destination's kind: s3, gs or azblob
    endpoint: str | None = None               # None: the kind's own (CDH_S3_ENDPOINT ...)
    account: str | None = None                # azblob: None: the connection string's, else CDH_AZURE_ACCOUNT
    region: str | None = None
    addressing: str | None = None
    ca_bundle: str | None = None
    verify_tls: bool | None = None
    credentials: Credentials | None = None    # None: the platform's credential chain
    recipients: tuple[str, ...] = ()          # age recipients (age1...): encrypted when set
    key_prefix: str | None = None             # None: CDH_S3_KEY_PREFIX
    sse: str = "none"
    sse_kms_key_id: str = ""
    storage_class: str = ""
    line: int = 0                             # where it is in the file, for messages

    @property
    def url(self) -> str:
        return f"{self.kind}://{self.bucket}/{self.prefix}"

    @property
    def encrypted(self) -> bool:
        return bool(self.recipients)

    def matches(self, namespace: str) -> bool:
        return any(fnmatch.fnmatchcase(namespace, p) for p in self.namespaces)


@dataclass(frozen=True)
class Choice:
    """Where one zip goes: a route, the main destination (``route`` None), or nowhere (keep, drop)."""

    action: str                     # "upload", KEEP or DROP
    name: str                       # the route's name, MAIN, KEEP or DROP: the label in logs and metrics
    route: Route | None = None
    why: str = ""                   # for keep/drop: which rule said so


@dataclass(frozen=True)
class RouteTable:
    routes: tuple[Route, ...] = ()
    default: str = MAIN
    unknown: str = MAIN
    source: str = ""                # the file it came from ("": no CDH_ROUTES_FILE)

    def choose(self, namespace: str | None) -> Choice:
        """The first route naming ``namespace``, else ``default`` (``unknown`` when there is none)."""
        if not namespace:
            return _fallback(self.unknown, "its namespace is unknown (unknown: in CDH_ROUTES_FILE)")
        for route in self.routes:
            if route.matches(namespace):
                return Choice("upload", route.name, route)
        return _fallback(self.default, f"no route names namespace {namespace} (default: in CDH_ROUTES_FILE)")

    @property
    def uses_main(self) -> bool:
        """Whether any zip can go to the main destination (CDH_S3_BUCKET ...)."""
        return MAIN in (self.default, self.unknown)

    def describe(self) -> list[str]:
        """One line per route and fallback, for ``cdh config`` and the agent's start (no secrets)."""
        from cdh import agecrypt

        lines = []
        for r in self.routes:
            creds = f"keys from {r.credentials.directory}" if r.credentials else "the platform's credentials"
            enc = (f", encrypted to {', '.join(agecrypt.fingerprint(x) for x in r.recipients)}"
                   if r.recipients else "")
            lines.append(f"route {r.name}: {', '.join(r.namespaces)} -> {r.url} ({creds}{enc})")
        lines.append(f"default: {self.default}; unknown namespace: {self.unknown}")
        return lines


def destination_of(route: Route, settings: Settings) -> Destination:
    """The route's destination (named after it), what it leaves unset taken as the module's docstring
    says: the connection from the kind's main settings, never the main destination's keys or object
    settings. ConfigError (one line) when an azblob:// route's account cannot be known."""
    from cdh.destination import Destination

    def either(mine, main):
        return main if mine is None else mine

    common = {"kind": route.kind, "bucket": route.bucket, "prefix": route.prefix, "name": route.name,
              "key_template": either(route.key_prefix, settings.s3_key_prefix),
              "key_layout": settings.key_layout}
    if route.kind == GS:
        return Destination(**common, gcs=_gcs_access(route, settings))
    if route.kind == AZBLOB:
        return Destination(**common, azure=_azure_access(route, settings))
    from cdh.destination import S3Access

    s, creds = settings, route.credentials or Credentials("")
    access = S3Access(
        endpoint=either(route.endpoint, s.s3_endpoint), region=either(route.region, s.s3_region),
        addressing=either(route.addressing, s.s3_addressing),
        ca_bundle=either(route.ca_bundle, s.s3_ca_bundle),
        verify_tls=either(route.verify_tls, s.s3_verify_tls),
        access_key=creds.access_key, secret_key=creds.secret_key, session_token=creds.session_token,
        sse=route.sse, sse_kms_key_id=route.sse_kms_key_id, storage_class=route.storage_class)
    return Destination(**common, s3=access)


def _gcs_access(route: Route, settings: Settings):
    """The main gs:// connection (CDH_GCS_ENDPOINT, or the emulator) unless the route names its own
    endpoint; the route's key file, else Application Default Credentials (never CDH_GCS_CREDENTIALS_FILE)."""
    from cdh.destination import GcsAccess, file_digest, gcs_access

    main = gcs_access(settings)
    endpoint = route.endpoint or main.endpoint
    if route.credentials:  # the digest: a rotated key.json is another destination, hence a new store
        key_file = route.credentials.key_file
        return GcsAccess(endpoint=endpoint, credentials_file=key_file,
                         credentials_digest=file_digest(key_file))
    return GcsAccess(endpoint=endpoint, anonymous=main.anonymous and not route.endpoint)


def _azure_access(route: Route, settings: Settings):
    """The storage account: the route's ``account``, else its connection string's, else the main one
    (CDH_AZURE_ACCOUNT or CDH_AZURE_CONNECTION_STRING's); its endpoint: the route's, its connection
    string's, CDH_AZURE_ENDPOINT when it is the main account, else Azure's public one. The credential:
    the route's connection string, account key or SAS, else Entra ID tokens (never the main keys)."""
    from cdh.destination import azure_access_of, parse_connection_string

    s, creds = settings, route.credentials or Credentials("")
    mine = parse_connection_string(creds.connection_string, f"{creds.directory}/{CONNECTION_STRING_FILE}")
    main = parse_connection_string(s.azure_connection_string, s.env_name("azure_connection_string"))
    main_account = s.azure_account or main.get("AccountName", "")
    account = route.account or mine.get("AccountName") or main_account
    endpoint = route.endpoint or mine.get("BlobEndpoint", "")
    if not account:
        raise ConfigError("an azblob:// route needs a storage account: account:, the AccountName of its "
                          f"{CONNECTION_STRING_FILE}, or {s.env_name('azure_account')}")
    if not endpoint and not mine and account == main_account:
        endpoint = s.azure_endpoint or main.get("BlobEndpoint", "")
    return azure_access_of(
        account=account, endpoint=endpoint, suffix=mine.get("EndpointSuffix", ""),
        protocol=mine.get("DefaultEndpointsProtocol", ""),
        key=mine.get("AccountKey") or creds.account_key, sas=mine.get("SharedAccessSignature") or creds.sas,
        checksum=s.azure_checksum,
        names={"account": "account", "key": f"{creds.directory}/"
               + (CONNECTION_STRING_FILE if mine.get("AccountKey") else ACCOUNT_KEY_FILE)})


def _fallback(what: str, why: str) -> Choice:
    return Choice("upload", MAIN, None, why) if what == MAIN else Choice(what, what, None, why)


NONE = RouteTable()


# ---------------------------------------------------------------- loading


def load(settings: Settings) -> RouteTable:
    """The routes of ``CDH_ROUTES_FILE``, or :data:`NONE` (everything to the main destination)."""
    path = settings.routes_file
    if not path:
        return NONE
    where = f"{settings.env_name('routes_file')} {path}"
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"{where}: cannot read the file ({err.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{where}: bigger than {MAX_FILE_BYTES} bytes")
    table = parse(data, path, settings.env_name("routes_file") + " ")
    for i, route in enumerate(table.routes):
        try:
            destination_of(route, settings)  # what depends on the settings too (an azblob:// account)
        except ConfigError as err:
            raise ConfigError(f"{where}:{route.line}: routes[{i}]: {err}") from None
    return table


def parse(data: bytes | str, path: str = "<routes>", label: str = "") -> RouteTable:
    """A routes file's text as a :class:`RouteTable`; ConfigError naming ``path:line`` and the field
    (after ``label``: the setting that named the file)."""
    try:
        return _parse(data, path)
    except ConfigError as err:
        raise ConfigError(f"{label}{err}") from None


def _parse(data: bytes | str, path: str) -> RouteTable:
    doc, lines = _read_yaml(data, path)
    if doc is None:
        doc = {}
    p = _Place(path, lines)
    if not isinstance(doc, dict):
        raise p.error((), "the file is a mapping with routes:, default: and unknown:")
    _known_keys(p, (), doc, TOP_KEYS)
    default = _fallback_value(p, doc, "default", MAIN)
    unknown = _fallback_value(p, doc, "unknown", default)
    raw_routes = doc.get("routes") or []
    if not isinstance(raw_routes, list):
        raise p.error(("routes",), "a list of routes")
    routes, names = [], set()
    for i, raw in enumerate(raw_routes):
        route = _route(p, ("routes", i), raw)
        if route.name in names:
            raise p.error(("routes", i, "name"), f"{route.name!r} names two routes")
        names.add(route.name)
        routes.append(route)
    return RouteTable(tuple(routes), default, unknown, path)


def _fallback_value(p: _Place, doc: dict, key: str, default: str) -> str:
    value = doc.get(key, default)
    if value not in FALLBACKS:
        raise p.error((key,), f"one of {', '.join(FALLBACKS)}, not {value!r}")
    return value


def _route(p: _Place, at: tuple, raw: Any) -> Route:
    if not isinstance(raw, dict):
        raise p.error(at, "a route is a mapping with name:, namespaces: and destination:")
    _known_keys(p, at, raw, ROUTE_KEYS)
    for required in ("name", "namespaces", "destination"):
        if raw.get(required) in (None, "", []):
            raise p.error(at, f"{required}: is missing")
    name = _string(p, at, raw, "name")
    if not _NAME.fullmatch(name) or name in FALLBACKS:
        raise p.error((*at, "name"), f"{name!r} is not a route name: [a-z0-9._-], at most 63, "
                                     f"not {', '.join(FALLBACKS)}")
    kind, bucket, prefix = _destination(p, at, _string(p, at, raw, "destination"))
    for key, only in KIND_KEYS.items():
        if raw.get(key) is not None and only != kind:
            raise p.error((*at, key), f"only for {only}:// destinations, not {kind}://")
    fields: dict[str, Any] = {
        "name": name, "namespaces": _namespaces(p, at, raw), "kind": kind, "bucket": bucket,
        "prefix": prefix, "line": p.line(at),
        "recipients": _recipients(p, at, raw.get("recipients")),
        "credentials": _credentials(p, at, raw.get("credentials"), kind),
    }
    for key, parse_value in (("endpoint", endpoint_url), ("account", _account),
                             ("region", str.strip), ("addressing", _addressing),
                             ("key_prefix", _key_prefix), ("sse", _sse), ("sse_kms_key_id", str.strip),
                             ("storage_class", str.strip), ("ca_bundle", _abs_path),
                             ("verify_tls", parse_bool)):
        if raw.get(key) is not None:
            fields[key] = _value(p, (*at, key), raw[key], parse_value)
    if fields.get("sse_kms_key_id") and fields.get("sse") != "aws:kms":
        raise p.error((*at, "sse_kms_key_id"), "set, but sse is not aws:kms")
    return Route(**fields)


def _string(p: _Place, at: tuple, raw: dict, key: str) -> str:
    value = raw[key]
    if not isinstance(value, str):
        raise p.error((*at, key), "a string")
    return value.strip()


def _value(p: _Place, at: tuple, value: Any, parse_value) -> Any:
    if isinstance(value, bool):
        value = "true" if value else "false"
    if not isinstance(value, (str, int, float)):
        raise p.error(at, "a single value")
    try:
        return parse_value(str(value))
    except ValueError as err:
        raise p.error(at, f"{value!r} is not valid: {err}") from None


def _abs_path(raw: str) -> str:
    if not raw.startswith("/"):
        raise ValueError("an absolute path")
    return os.path.normpath(raw)


def _account(raw: str) -> str:
    if not _ACCOUNT.fullmatch(raw.strip()):
        raise ValueError("a storage account name: 3-24 of a-z 0-9")
    return raw.strip()


def _destination(p: _Place, at: tuple, url: str) -> tuple[str, str, str]:
    """(kind, bucket, prefix) of ``kind://bucket[/prefix]``, checked as CDH_DESTINATION is."""
    try:
        kind, _, rest = destination_url(url).partition("://")
    except ValueError as err:
        raise p.error((*at, "destination"), f"{url!r} is not valid: {err}") from None
    bucket, _, prefix = rest.partition("/")
    return kind, bucket, prefix


def _namespaces(p: _Place, at: tuple, raw: dict) -> tuple[str, ...]:
    value = raw["namespaces"]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise p.error((*at, "namespaces"), "a list of namespace names or globs")
    out = []
    for i, ns in enumerate(value):
        if not isinstance(ns, str) or not _NAMESPACE_GLOB.fullmatch(ns.strip()):
            raise p.error((*at, "namespaces", i), f"{ns!r} is not a namespace name or glob "
                                                  "(a-z 0-9 - and * ? [ ] !)")
        out.append(ns.strip())
    return tuple(out)


def _recipients(p: _Place, at: tuple, value: Any) -> tuple[str, ...]:
    if value in (None, []):
        return ()
    from cdh import agecrypt

    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or len(value) > MAX_RECIPIENTS:
        raise p.error((*at, "recipients"), f"a list of at most {MAX_RECIPIENTS} age recipients (age1...)")
    out = []
    for i, r in enumerate(value):
        try:
            out.append(agecrypt.recipient(r))
        except ValueError as err:
            raise p.error((*at, "recipients", i), str(err)) from None
    return tuple(dict.fromkeys(out))


def _credentials(p: _Place, at: tuple, value: Any, kind: str) -> Credentials | None:
    """What a mounted Secret directory holds for a destination of ``kind`` (KEY_FILES): s3:
    ``access-key`` and ``secret-key`` (``session-token`` optional); azblob: one of ``connection-string``,
    ``account-key``, ``sas``; gs: ``key.json``."""
    if value in (None, ""):
        return None
    here = (*at, "credentials")
    if not isinstance(value, str) or not value.startswith("/"):
        raise p.error(here, "the absolute path of a directory (a mounted Secret)")
    directory = os.path.normpath(value)
    if not os.path.isdir(directory):
        raise p.error(here, f"{directory}: no such directory (is the Secret mounted?)")
    found = {}
    for name in KEY_FILES[kind]:
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                found[name] = f.read(64 << 10).strip("\r\n")  # as CDH_*_FILE secrets are read
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as err:
            raise p.error(here, f"cannot read {directory}/{name} ({getattr(err, 'strerror', None) or err})"
                          ) from None
    given = [name for name, text in found.items() if text]
    if kind == S3:
        for name in (ACCESS_KEY_FILE, SECRET_KEY_FILE):
            if name not in found:
                raise p.error(here, f"{directory} has no {name} file")
        if not found[ACCESS_KEY_FILE] or not found[SECRET_KEY_FILE]:
            raise p.error(here, f"{directory}: {ACCESS_KEY_FILE} or {SECRET_KEY_FILE} is empty")
        return Credentials(directory, found[ACCESS_KEY_FILE], found[SECRET_KEY_FILE],
                           found.get(SESSION_TOKEN_FILE, ""))
    if kind == AZBLOB:
        if len(given) != 1:
            names = ", ".join(KEY_FILES[AZBLOB])
            raise p.error(here, f"{directory} holds {' and '.join(given) or 'none'} of {names}: give one")
        if given == [CONNECTION_STRING_FILE]:
            from cdh.destination import parse_connection_string

            try:
                parse_connection_string(found[CONNECTION_STRING_FILE],
                                        f"{directory}/{CONNECTION_STRING_FILE}")
            except ConfigError as err:
                raise p.error(here, str(err)) from None
        return Credentials(directory, connection_string=found.get(CONNECTION_STRING_FILE, ""),
                           account_key=found.get(ACCOUNT_KEY_FILE, ""),
                           sas=found.get(SAS_FILE, "").lstrip("?"))
    if not given:
        raise p.error(here, f"{directory} has no {GCS_KEY_FILE} file (or it is empty)")
    import json

    try:
        key = json.loads(found[GCS_KEY_FILE])
    except ValueError:
        key = None
    if not isinstance(key, dict) or not isinstance(key.get("type"), str):
        raise p.error(here, f"{directory}/{GCS_KEY_FILE} is not a Google credentials file (JSON with a type)")
    return Credentials(directory, key_file=os.path.join(directory, GCS_KEY_FILE))


def _known_keys(p: _Place, at: tuple, mapping: dict, allowed: tuple[str, ...]) -> None:
    for key in mapping:
        if key not in allowed:
            import difflib

            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]}?)" if close else f": one of {', '.join(allowed)}"
            raise p.error((*at, key), f"{key!r} is not known here{hint}")


# ---------------------------------------------------------------- YAML, with the place of each value


class _Place:
    """Names a value in messages: ``file:line: routes[1].credentials: ...``."""

    def __init__(self, path: str, lines: dict[tuple, int]) -> None:
        self.path = path
        self.lines = lines

    def line(self, at: tuple) -> int:
        while at and at not in self.lines:
            at = at[:-1]
        return self.lines.get(at, 1)

    def error(self, at: tuple, message: str) -> ConfigError:
        field_name = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in at).lstrip(".")
        return ConfigError(f"{self.path}:{self.line(at)}: " + (f"{field_name}: " if field_name else "")
                           + message)


def yaml_problem(err: Exception, path: str) -> str:
    """One line for a PyYAML error: ``path:line:column: not valid YAML: what``."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
    what = getattr(err, "problem", None) or getattr(err, "context", None) or str(err).replace("\n", " ")
    return f"{where}: not valid YAML: {what}"


def _read_yaml(data: bytes | str, path: str) -> tuple[Any, dict[tuple, int]]:
    """(the document, the line of each value by its path). Safe loading only; anchors and aliases are
    refused (they are how a small file becomes a huge one)."""
    import yaml

    loader = yaml.SafeLoader(data)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines: dict[tuple, int] = {}
        _walk(node, (), lines, set())
        return loader.construct_document(node), lines
    except yaml.YAMLError as err:
        raise ConfigError(yaml_problem(err, path)) from None
    except _Refused as err:
        raise _Place(path, {err.at: err.line}).error(err.at, err.why) from None
    finally:
        loader.dispose()


class _Refused(Exception):
    def __init__(self, line: int, at: tuple, why: str) -> None:
        self.line, self.at, self.why = line, at, why


def _walk(node, at: tuple, lines: dict[tuple, int], seen: set[int]) -> None:
    import yaml

    line = node.start_mark.line + 1
    if id(node) in seen:
        raise _Refused(line, at, "anchors and aliases are not allowed in a routes file")
    seen.add(id(node))
    lines[at] = line
    if isinstance(node, yaml.MappingNode):
        keys = set()
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else f"<{key.tag}>"
            if name in keys:
                raise _Refused(key.start_mark.line + 1, (*at, name), "given twice")
            keys.add(name)
            _walk(value, (*at, name), lines, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*at, i), lines, seen)
