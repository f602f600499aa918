"""A stand-in Kubernetes API server for Events: HTTPS with its own CA, bearer tokens, strict checks.

It answers only what cdh uses, the way kube-apiserver would:
``POST /apis/events.k8s.io/v1/namespaces/<ns>/events`` with ``Content-Type: application/json``
and ``Authorization: Bearer <token>``; the token must be the one in the service account directory
*now* (rotate it with :meth:`FakeApiServer.rotate_token`). The body is checked as the
events.k8s.io/v1 create validation does (pkg/apis/core/validation/events.go: required fields,
lengths, MicroTime, namespace agreement, no deprecated fields) and strictly (unknown fields are
errors, as with ``fieldValidation=Strict``). Answers: 201 with the stored object, 401, 403 (set
``forbid``), 404, 405, 409 AlreadyExists for a name already stored, 415, 422 with the causes.

    with FakeApiServer(tmp_path) as api:
        env = api.agent_env()             # KUBERNETES_SERVICE_HOST/PORT, CDH_TEST_SERVICEACCOUNT_DIR
        ...; api.events, api.requests
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import ssl
import threading
import uuid as uuidlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PATH = re.compile(r"^/apis/events\.k8s\.io/v1/namespaces/([a-z0-9]([-a-z0-9]*[a-z0-9])?)/events$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
TOP_FIELDS = {"apiVersion", "kind", "metadata", "eventTime", "series", "reportingController",
              "reportingInstance", "action", "reason", "regarding", "related", "note", "type",
              "deprecatedSource", "deprecatedFirstTimestamp", "deprecatedLastTimestamp", "deprecatedCount"}
DEPRECATED = {"deprecatedSource", "deprecatedFirstTimestamp", "deprecatedLastTimestamp", "deprecatedCount"}
META_FIELDS = {"name", "namespace", "labels", "annotations", "generateName"}
REFERENCE_FIELDS = {"apiVersion", "fieldPath", "kind", "name", "namespace", "resourceVersion", "uid"}


def event_problems(event: dict, namespace: str) -> list[str]:
    """Why kube-apiserver would refuse ``event`` (created in ``namespace``); empty when it accepts it."""
    p: list[str] = []
    p += [f"unknown field {k!r}" for k in set(event) - TOP_FIELDS]
    p += [f"{k}: needs to be unset" for k in DEPRECATED & set(event)]
    if event.get("apiVersion") != "events.k8s.io/v1" or event.get("kind") != "Event":
        p.append("apiVersion/kind must be events.k8s.io/v1 Event")
    meta = event.get("metadata") or {}
    p += [f"unknown field 'metadata.{k}'" for k in set(meta) - META_FIELDS]
    name = meta.get("name", "")
    if not (isinstance(name, str) and 0 < len(name) <= 253 and DNS_SUBDOMAIN.match(name)):
        p.append(f"metadata.name {name!r}: not a DNS-1123 subdomain")
    if meta.get("namespace", namespace) != namespace:
        p.append("metadata.namespace does not match the request")
    p += [f"metadata.annotations[{k}] is not a string" for k, v in (meta.get("annotations") or {}).items()
          if not isinstance(v, str)]
    if not MICRO_TIME.match(str(event.get("eventTime", ""))):
        p.append("eventTime: Required (a MicroTime)")
    if event.get("type") not in ("Normal", "Warning"):
        p.append(f"type: has invalid value: {event.get('type')}")
    if event.get("series") is not None:
        p.append("series: not expected here")
    regarding = event.get("regarding") or {}
    p += [f"unknown field 'regarding.{k}'" for k in set(regarding) - REFERENCE_FIELDS]
    if regarding.get("namespace") != namespace:
        p.append("regarding.namespace does not match event.namespace")
    controller = str(event.get("reportingController", ""))
    ctl_name = controller.rsplit("/", 1)[-1]
    ctl_prefix = controller.rsplit("/", 1)[0] if "/" in controller else ""
    if not (0 < len(ctl_name) <= 63 and QUALIFIED_NAME.match(ctl_name)) or (
            ctl_prefix and not DNS_SUBDOMAIN.match(ctl_prefix)):
        p.append(f"reportingController {controller!r}: not a qualified name")
    for field, limit in (("reportingInstance", 128), ("action", 128), ("reason", 128)):
        value = event.get(field)
        if not isinstance(value, str) or not 0 < len(value) <= limit:
            p.append(f"{field}: Required, at most {limit} characters")
    if len(str(event.get("note", ""))) > 1024:
        p.append("note: can have at most 1024 characters")
    return p


def make_tls(directory: Path, ip: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate for ``ip`` (it is also the CA the client trusts) and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "ca.crt", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _status(code: int, reason: str, message: str, causes: list[str] | None = None) -> dict:
    out = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
           "reason": reason, "code": code}
    if causes:
        out["details"] = {"causes": [{"message": c} for c in causes]}
    return out


class FakeApiServer:
    def __init__(self, root: Path, host: str = "127.0.0.1", netns=None) -> None:
        """``netns`` (tests/support/netns.py): listen inside that network namespace, on ``host`` there."""
        self.host, self.netns = host, netns
        self.sa_dir = root / "serviceaccount"
        self.sa_dir.mkdir(parents=True)
        self.cert, self.key = make_tls(self.sa_dir, host)
        (self.sa_dir / "namespace").write_text("cdh")
        self.rotate_token()
        self.events: list[dict] = []      # stored, in order
        self.requests: list[dict] = []    # every request: method, path, status
        self.forbid = False
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    @property
    def token(self) -> str:
        return (self.sa_dir / "token").read_text().strip()

    def rotate_token(self) -> str:
        token = f"eyJ.{uuidlib.uuid4().hex}.sig"  # the kubelet replaces the projected token file
        tmp = self.sa_dir / ".token.tmp"
        tmp.write_text(token)
        tmp.replace(self.sa_dir / "token")
        return token

    def agent_env(self) -> dict[str, str]:
        assert self.server is not None
        return {"KUBERNETES_SERVICE_HOST": self.host, "KUBERNETES_SERVICE_PORT": str(self.port),
                "CDH_TEST_SERVICEACCOUNT_DIR": str(self.sa_dir)}

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.server_address[1]

    def __enter__(self) -> FakeApiServer:
        def listen() -> ThreadingHTTPServer:  # the socket stays in the namespace it was made in
            return ThreadingHTTPServer((self.host, 0), _handler(self))

        self.server = listen() if self.netns is None else self.netns.call(listen)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def answer(self, method: str, path: str, headers, body: bytes) -> tuple[int, dict]:
        if method != "POST":
            return 405, _status(405, "MethodNotAllowed", f"{method} is not supported here")
        m = PATH.match(path)
        if not m:
            return 404, _status(404, "NotFound", f"the server could not find the requested resource {path}")
        if headers.get("Authorization") != f"Bearer {self.token}":
            return 401, _status(401, "Unauthorized", "Unauthorized")
        if self.forbid:
            return 403, _status(403, "Forbidden", 'events.events.k8s.io is forbidden: User '
                                '"system:serviceaccount:cdh:cdh-agent" cannot create resource "events"')
        if (headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            return 415, _status(415, "UnsupportedMediaType", "the request body is in an unknown format")
        try:
            event = json.loads(body)
        except ValueError:
            return 400, _status(400, "BadRequest", "the body is not JSON")
        problems = event_problems(event, m.group(1)) if isinstance(event, dict) else ["not an object"]
        if problems:
            return 422, _status(422, "Invalid", "Event is invalid", problems)
        with self.lock:
            if any(e["metadata"]["name"] == event["metadata"]["name"] for e in self.events):
                name = event["metadata"]["name"]
                return 409, _status(409, "AlreadyExists", f"events {name!r} already exists")
            stored = {**event, "metadata": {**event["metadata"], "namespace": m.group(1),
                                            "uid": str(uuidlib.uuid4()), "resourceVersion": "1"}}
            self.events.append(stored)
        return 201, stored


def _handler(api: FakeApiServer):
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, obj = api.answer(self.command, self.path, self.headers, body)
            with api.lock:
                api.requests.append({"method": self.command, "path": self.path, "status": status})
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, *args) -> None:
            pass

    return Handler
