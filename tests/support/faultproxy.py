"""An HTTP/1.1 proxy in front of an object store that misbehaves by rule.

Rules match a request (method, a regex on the target path+query, optional
header regex) and act on it: answer an error as the store would (S3's XML, Azure's
XML and ``x-ms-error-code``, Cloud Storage's JSON: the proxy's ``flavour``; 500,
503 SlowDown / ServerBusy ...), reset the connection part-way through the request
body, or stall before forwarding.
Each rule acts ``times`` times (None: until removed). Everything else is
forwarded byte for byte over keep-alive connections.

It runs its own event loop in a thread, so a test drives an agent subprocess
through it while changing rules and counting hits::

    with FaultProxy(upstream_url) as proxy:
        proxy.add(Rule("error", method="PUT", status=503, code="SlowDown", times=5))
        env["CDH_S3_ENDPOINT"] = proxy.url
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import struct
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "expect", "te", "upgrade"}


@dataclass
class Rule:
    action: str                       # "error" | "reset" | "stall"
    method: str | None = None
    path: str | None = None           # regex searched in "path?query"
    header: tuple[str, str] | None = None  # (name, regex on its value)
    status: int = 503
    code: str = "SlowDown"
    times: int | None = None          # act this many times; None: always
    reset_after: int | None = None    # reset: request-body bytes read first (default: half)
    stall_s: float | None = None      # stall: then forward; None: until released or stopped
    hits: int = 0
    released: threading.Event = field(default_factory=threading.Event)

    def matches(self, method: str, target: str, headers: dict[str, str]) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method and self.method != method:
            return False
        if self.path and not re.search(self.path, target):
            return False
        if self.header:
            name, pattern = self.header
            if not re.search(pattern, headers.get(name.lower(), "")):
                return False
        return True


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: dict[str, str]
    raw_head: bytes


class FaultProxy:
    def __init__(self, upstream: str, flavour: str = "s3") -> None:
        """``flavour``: whose errors to answer, "s3", "azblob" or "gs" (cdh/destination.py's kinds)."""
        u = urlsplit(upstream)
        self.flavour = flavour
        self.upstream = (u.hostname, u.port or 80)
        self.rules: list[Rule] = []
        self.requests: list[tuple[str, str]] = []  # (method, target) seen
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="faultproxy")
        self._server: asyncio.AbstractServer | None = None
        self._stopping: asyncio.Event | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self.port = 0

    # ------------------------------------------------------------ control (any thread)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        for rule in self.rules:
            rule.released.set()
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def refuse_key(self, access_key: str, server) -> None:
        """Requests signed with ``access_key`` are refused as S3 refuses an unknown key (403
        InvalidAccessKeyId): by the server itself where it checks keys (SeaweedFS), else (moto takes
        any key) by this proxy."""
        if not server.checks_credentials:
            self.add(Rule("error", header=("authorization", access_key), status=403,
                          code="InvalidAccessKeyId"))

    def fail_encryption(self, server) -> str:
        """A KMS key id the store cannot encrypt with, answered as SeaweedFS answers it (500
        InternalError): by the server itself where it checks key ids, else by this proxy, for every
        request asking for encryption. Returns the key id."""
        if not server.checks_kms_keys:
            self.add(Rule("error", header=("x-amz-server-side-encryption", "."), status=500,
                          code="InternalError"))
        return "alias/cdh-no-such-key"

    def clear(self) -> None:
        with self._lock:
            rules, self.rules = self.rules, []
        for rule in rules:
            rule.released.set()

    def down(self) -> None:
        """The server is gone: the port refuses connections, open ones are reset, until :meth:`up`."""
        asyncio.run_coroutine_threadsafe(self._down(), self._loop).result(10)

    def up(self) -> None:
        """Listen again on the same port."""
        asyncio.run_coroutine_threadsafe(self._listen(self.port), self._loop).result(10)

    def count(self, method: str | None = None, path: str | None = None) -> int:
        with self._lock:
            return sum(1 for m, t in self.requests
                       if (method is None or m == method) and (path is None or re.search(path, t)))

    # ------------------------------------------------------------ the proxy

    async def _start(self) -> None:
        self._stopping = asyncio.Event()
        await self._listen(0)

    async def _listen(self, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _down(self) -> None:
        assert self._server
        self._server.close()  # no new connections
        for writer in list(self._clients):
            _reset(writer)
        await self._server.wait_closed()

    async def _stop(self) -> None:
        assert self._server and self._stopping
        self._stopping.set()
        self._server.close()
        for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
            task.cancel()

    def _match(self, req: Request) -> Rule | None:
        with self._lock:
            self.requests.append((req.method, req.target))
            for rule in self.rules:
                if rule.matches(req.method, req.target, req.headers):
                    rule.hits += 1
                    return rule
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._clients.add(writer)
        try:
            while True:
                req = await _read_request(reader)
                if req is None:
                    return
                rule = self._match(req)
                verdict = await self._act(rule, req, reader, writer) if rule else FORWARD
                if verdict == CLOSE:
                    return
                if verdict == ANSWERED:
                    continue
                if req.headers.get("expect", "").lower() == "100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                if upstream is None:
                    upstream = await asyncio.open_connection(*self.upstream)
                client_keep, upstream_keep = await _forward(req, reader, writer, *upstream)
                if not upstream_keep:
                    upstream[1].close()
                    upstream = None
                if not client_keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError, ValueError):
            return
        finally:
            self._clients.discard(writer)
            for w in (writer, upstream[1] if upstream else None):
                if w is not None:
                    w.close()

    async def _act(self, rule: Rule, req: Request, reader, writer) -> str:
        """Apply ``rule``: FORWARD the request after all, ANSWERED (keep the connection) or CLOSE."""
        if rule.action == "stall":
            await asyncio.to_thread(rule.released.wait, rule.stall_s)
            return FORWARD
        length = int(req.headers.get("content-length", "0") or 0)
        expects = req.headers.get("expect", "").lower() == "100-continue"
        if rule.action == "reset":
            if expects:
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            n = length // 2 if rule.reset_after is None else min(rule.reset_after, length)
            if n:
                await reader.readexactly(n)
            _reset(writer)
            return CLOSE
        if rule.action == "error":
            if not expects:  # with Expect, S3 answers before the body is sent, and the client skips it
                await _drain_body(req, reader)
            content_type, extra, body = error_body(self.flavour, rule.status, rule.code)
            writer.write(f"HTTP/1.1 {rule.status} Injected\r\nContent-Type: {content_type}\r\n{extra}"
                         f"Content-Length: {len(body)}\r\n\r\n".encode()
                         + (b"" if req.method == "HEAD" else body))  # HEAD answers carry no body
            await writer.drain()
            closing = expects or req.headers.get("connection", "").lower() == "close"
            return CLOSE if closing else ANSWERED
        raise ValueError(f"unknown action {rule.action!r}")


FORWARD, ANSWERED, CLOSE = "forward", "answered", "close"


def error_body(flavour: str, status: int, code: str) -> tuple[str, str, bytes]:
    """(Content-Type, extra header lines, body) of an error as the store of ``flavour`` answers it."""
    message = "injected by faultproxy"
    if flavour == "gs":
        body = json.dumps({"error": {"code": status, "message": message,
                                     "errors": [{"reason": code, "message": message}]}}).encode()
        return "application/json; charset=UTF-8", "", body
    xml = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
           f"<Message>{message}</Message></Error>").encode()
    extra = f"x-ms-error-code: {code}\r\n" if flavour == "azblob" else ""
    return "application/xml", extra, xml


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    method, target, version = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
    return Request(method, target, version, _headers(head), head)


def _forward_head(head: bytes) -> bytes:
    lines = head.decode("latin-1").split("\r\n")
    kept = [lines[0]] + [ln for ln in lines[1:] if ln and ln.split(":", 1)[0].strip().lower()
                         not in HOP_BY_HOP]
    return ("\r\n".join(kept) + "\r\n\r\n").encode("latin-1")


async def _copy_body(headers: dict[str, str], src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                     until_eof: bool) -> None:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size_line = await src.readuntil(b"\r\n")
            dst.write(size_line)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                while True:  # trailers, then the blank line
                    line = await src.readuntil(b"\r\n")
                    dst.write(line)
                    if line == b"\r\n":
                        break
                break
            dst.write(await src.readexactly(size + 2))
            await dst.drain()
    elif "content-length" in headers:
        left = int(headers["content-length"])
        while left:
            chunk = await src.read(min(left, 1 << 16))
            if not chunk:
                raise ConnectionError("peer closed mid-body")
            dst.write(chunk)
            left -= len(chunk)
            await dst.drain()
    elif until_eof:
        while chunk := await src.read(1 << 16):
            dst.write(chunk)
            await dst.drain()
    await dst.drain()


async def _drain_body(req: Request, reader: asyncio.StreamReader) -> None:
    class _Null:
        def write(self, _: bytes) -> None:
            pass

        async def drain(self) -> None:
            pass

    await _copy_body(req.headers, reader, _Null(), until_eof=False)  # type: ignore[arg-type]


async def _forward(req: Request, creader, cwriter, ureader, uwriter) -> tuple[bool, bool]:
    """One request upstream and its response back: (client connection stays, upstream stays)."""
    uwriter.write(_forward_head(req.raw_head))
    await _copy_body(req.headers, creader, uwriter, until_eof=False)
    while True:
        head = await ureader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 100:
            break
    resp = _headers(head)
    no_body = req.method == "HEAD" or status in (204, 304)
    framed = no_body or "content-length" in resp or resp.get("transfer-encoding", "").lower() == "chunked"
    cwriter.write(_forward_head(head) if framed else head)
    if not no_body:
        await _copy_body(resp, ureader, cwriter, until_eof=not framed)
    await cwriter.drain()
    return framed, framed and resp.get("connection", "").lower() != "close"


def _headers(head: bytes) -> dict[str, str]:
    headers = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return headers


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST, as a crashed load balancer does, rather than a clean FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
