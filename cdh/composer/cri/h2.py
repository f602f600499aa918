"""Unary gRPC calls over HTTP/2 on a unix socket, in the standard library.

Just the client side of what a CRI runtime speaks: cleartext HTTP/2 with prior knowledge
(RFC 9113), one call at a time on one connection, each with its own deadline (also sent as
``grpc-timeout``). Failures are :class:`GrpcError` with a gRPC status code, worded like
grpc-go's, so ``str(err)`` reads like crictl's messages:

- nothing listening, refused, reset, closed: ``Unavailable``
- the deadline passed: ``DeadlineExceeded`` (the connection is then dropped: the late answer
  must not be taken for the next call's)
- the server's own status: its code and message (``NotFound``, ``Unimplemented`` ...)
- bytes that are not HTTP/2 or gRPC: ``Internal``

Flow control: we announce a 16 MiB stream window and open the connection window as much, and
give back what DATA used in steps of half that, so a response never waits on us (and we never
block writing WINDOW_UPDATEs to a server busy writing); responses over ``max_bytes`` are
refused. Requests must fit the peer's initial window (64 KiB by default); CRI requests are a
few hundred bytes. See cdh/composer/cri/grpc.py for why this is hand-written.
"""

from __future__ import annotations

import _socket  # the C module: `socket` would bring socket.py, selectors and array into the host runtime
import struct
import time

from cdh.composer.cri import hpack

CODES = ("OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists",
         "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
         "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated")
OK, CANCELED, UNKNOWN, DEADLINE_EXCEEDED, NOT_FOUND = 0, 1, 2, 4, 5
RESOURCE_EXHAUSTED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE = 8, 12, 13, 14

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    range(10))
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
SETTINGS_ENABLE_PUSH, SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE = 0x2, 0x4, 0x5
WINDOW = 1 << 24
DEFAULT_MAX_FRAME = 16384
MAX_RESPONSE_BYTES = 16 << 20
# grpc-go's mapping of a non-200 HTTP status to a gRPC code
HTTP_TO_GRPC = {400: INTERNAL, 401: 16, 403: 7, 404: UNIMPLEMENTED, 429: UNAVAILABLE, 502: UNAVAILABLE,
                503: UNAVAILABLE, 504: UNAVAILABLE}


class GrpcError(Exception):
    """A call failed; ``code`` is the gRPC status code, ``str()`` one line."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    @property
    def code_name(self) -> str:
        return CODES[self.code] if 0 <= self.code < len(CODES) else str(self.code)

    def __str__(self) -> str:
        return f"rpc error: code = {self.code_name} desc = {self.message}"


class _Timeout(Exception):
    pass


class Channel:
    """A connection to one unix socket, opened on first use and again after a failure."""

    def __init__(self, path: str, authority: str = "localhost", user_agent: str = "cdh") -> None:
        self.path = path
        self.authority = authority
        self.user_agent = user_agent
        self.sock: _socket.socket | None = None
        self.decoder = hpack.Decoder()
        self.next_stream = 1
        self.peer_max_frame = DEFAULT_MAX_FRAME
        self.peer_window = 65535
        self.unacked = 0  # DATA bytes received since we last opened the connection window
        self.heard = False  # a frame arrived during the current call
        self.draining = False  # the runtime sent GOAWAY: finish this call, then reconnect
        self.end = 0.0  # the current call's deadline (time.monotonic)

    def close(self) -> None:
        self.draining = False
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def unary(self, method: str, request: bytes, timeout: float,
              max_bytes: int = MAX_RESPONSE_BYTES) -> bytes:
        """POST ``request`` to ``method`` (``/pkg.Service/Method``); the response message's bytes.

        A connection kept from an earlier call may have been closed since (the runtime restarted):
        when it fails before anything is heard back, the call is made once more on a new one.
        """
        self.end = time.monotonic() + max(timeout, 0.0)
        if self.draining:
            self.close()
        if self.sock is not None:
            try:
                return self._call(method, request, max_bytes)
            except GrpcError as err:
                if err.code != UNAVAILABLE or self.heard:
                    raise
        return self._call(method, request, max_bytes)

    def _call(self, method: str, request: bytes, max_bytes: int) -> bytes:
        self.heard = False
        try:
            if self.sock is None:
                self._connect()
            sid = self.next_stream
            self.next_stream += 2
            self._send_request(sid, method, request)
            return self._read_response(sid, max_bytes)
        except _Timeout:
            self.close()
            raise GrpcError(DEADLINE_EXCEEDED, "context deadline exceeded") from None
        except GrpcError as err:
            if err.code in (UNAVAILABLE, INTERNAL, RESOURCE_EXHAUSTED):
                self.close()  # the connection is in an unknown state
            raise
        except hpack.HpackError as err:
            self.close()
            raise GrpcError(INTERNAL, f"header decoding failed: {err}") from None
        except OSError as err:
            self.close()
            raise GrpcError(UNAVAILABLE, f"connection error: {err.strerror or err}") from None

    # ------------------------------------------------------------ connection

    def _connect(self) -> None:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.settimeout(self._left())
            sock.connect(self.path)
        except TimeoutError:
            sock.close()
            raise _Timeout() from None
        except OSError as err:
            sock.close()
            raise GrpcError(UNAVAILABLE, f"connection error: dial unix {self.path}: connect: "
                                         f"{err.strerror or err}") from None
        self.sock = sock
        self.decoder = hpack.Decoder()
        self.next_stream = 1
        self.peer_max_frame, self.peer_window, self.unacked = DEFAULT_MAX_FRAME, 65535, 0
        settings = struct.pack(">HIHI", SETTINGS_ENABLE_PUSH, 0, SETTINGS_INITIAL_WINDOW_SIZE, WINDOW)
        self._send(PREFACE + _frame(SETTINGS, 0, 0, settings)
                   + _frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", WINDOW - 65535)))

    def _left(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise _Timeout()
        return left

    def _send(self, data: bytes) -> None:
        assert self.sock is not None
        try:
            self.sock.settimeout(self._left())
            self.sock.sendall(data)
        except TimeoutError:
            raise _Timeout() from None

    def _recv_exact(self, n: int) -> bytes:
        assert self.sock is not None
        buf = bytearray()
        while len(buf) < n:
            try:
                self.sock.settimeout(self._left())
                chunk = self.sock.recv(n - len(buf))
            except TimeoutError:
                raise _Timeout() from None
            if not chunk:
                raise GrpcError(UNAVAILABLE, "connection closed by the runtime")
            buf += chunk
        return bytes(buf)

    def _read_frame(self) -> tuple[int, int, int, bytes]:
        head = self._recv_exact(9)
        self.heard = True
        length = int.from_bytes(head[:3], "big")
        ftype, flags = head[3], head[4]
        sid = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
        if length > 1 << 24:
            raise GrpcError(INTERNAL, f"frame of {length} bytes")
        return ftype, flags, sid, self._recv_exact(length) if length else b""

    # ------------------------------------------------------------ one call

    def _send_request(self, sid: int, method: str, request: bytes) -> None:
        ms = min(int(self._left() * 1000) + 1, 99_999_999)
        block = hpack.encode([
            (":method", "POST"), (":scheme", "http"), (":path", method), (":authority", self.authority),
            ("content-type", "application/grpc"), ("te", "trailers"), ("grpc-timeout", f"{ms}m"),
            ("user-agent", self.user_agent),
        ])
        body = b"\0" + struct.pack(">I", len(request)) + request
        if len(body) > self.peer_window:
            raise GrpcError(RESOURCE_EXHAUSTED, f"request of {len(body)} bytes is over the peer's window")
        out = bytearray(_frame(HEADERS, END_HEADERS, sid, block))  # header blocks of ours are tiny
        chunks = [body[i:i + self.peer_max_frame] for i in range(0, len(body), self.peer_max_frame)]
        for i, chunk in enumerate(chunks):
            out += _frame(DATA, END_STREAM if i == len(chunks) - 1 else 0, sid, chunk)
        self._send(bytes(out))

    def _read_response(self, sid: int, max_bytes: int) -> bytes:
        headers: list[tuple[str, str]] | None = None
        trailers: list[tuple[str, str]] | None = None
        body = bytearray()
        while True:
            ftype, flags, fsid, payload = self._read_frame()
            if fsid == 0:
                self._connection_frame(ftype, flags, payload, sid)
                continue
            if ftype in (HEADERS, PUSH_PROMISE):
                block = self._header_block(ftype, flags, payload)
                if ftype == PUSH_PROMISE or fsid != sid:
                    continue  # decoded only to keep the table in step
                if headers is None:
                    headers = block
                    _check_http_status(block)
                else:
                    trailers = block
            elif ftype == DATA and fsid == sid:
                data = _unpad(flags, payload)
                body += data
                if len(body) > max_bytes + 5:
                    self._send(_frame(RST_STREAM, 0, sid, struct.pack(">I", 0x8)))
                    raise GrpcError(RESOURCE_EXHAUSTED, f"response over {max_bytes} bytes, dropped")
                self.unacked += len(payload)
                if self.unacked > WINDOW // 2:  # give the connection window back in big steps
                    self._send(_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", self.unacked)))
                    self.unacked = 0
            elif ftype == RST_STREAM and fsid == sid:
                code = struct.unpack(">I", payload[:4])[0] if len(payload) >= 4 else 0
                raise GrpcError(CANCELED if code == 0x8 else UNAVAILABLE if code == 0x7 else INTERNAL,
                                f"stream reset by the runtime (HTTP/2 error code {code})")
            if fsid == sid and flags & END_STREAM and ftype in (HEADERS, DATA):
                return _result(trailers if trailers is not None else headers, bytes(body))

    def _connection_frame(self, ftype: int, flags: int, payload: bytes, sid: int) -> None:
        if ftype == SETTINGS and not flags & ACK:
            self._apply_settings(payload)
            self._send(_frame(SETTINGS, ACK, 0, b""))
        elif ftype == PING and not flags & ACK:
            self._send(_frame(PING, ACK, 0, payload))
        elif ftype == GOAWAY:
            last, code = struct.unpack(">II", payload[:8]) if len(payload) >= 8 else (0, 0)
            if (last & 0x7FFFFFFF) < sid:
                detail = payload[8:].decode("utf-8", "replace")
                raise GrpcError(UNAVAILABLE, f"the runtime closed the connection (GOAWAY, code {code}"
                                             f"{': ' + detail if detail else ''})")
            self.draining = True  # no new calls on this connection: the next one reconnects
        elif ftype == WINDOW_UPDATE and len(payload) == 4:
            self.peer_window += struct.unpack(">I", payload)[0] & 0x7FFFFFFF

    def _apply_settings(self, payload: bytes) -> None:
        for i in range(0, len(payload) - 5, 6):
            ident, value = struct.unpack(">HI", payload[i:i + 6])
            if ident == SETTINGS_MAX_FRAME_SIZE:
                self.peer_max_frame = value
            elif ident == SETTINGS_INITIAL_WINDOW_SIZE:
                self.peer_window = value

    def _header_block(self, ftype: int, flags: int, payload: bytes) -> list[tuple[str, str]]:
        data = _unpad(flags, payload)
        if flags & PRIORITY_FLAG and ftype == HEADERS:
            data = data[5:]
        if ftype == PUSH_PROMISE:
            data = data[4:]
        block = bytearray(data)
        while not flags & END_HEADERS:
            ctype, flags, _sid, more = self._read_frame()
            if ctype != CONTINUATION:
                raise GrpcError(INTERNAL, "header block interrupted by another frame")
            block += more
        return self.decoder.decode(bytes(block))


def _frame(ftype: int, flags: int, sid: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((ftype, flags)) + sid.to_bytes(4, "big") + payload


def _unpad(flags: int, payload: bytes) -> bytes:
    if not flags & PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise GrpcError(INTERNAL, "bad padding")
    return payload[1:len(payload) - payload[0]]


def _check_http_status(headers: list[tuple[str, str]]) -> None:
    status = dict(headers).get(":status", "")
    if status != "200":
        code = HTTP_TO_GRPC.get(int(status) if status.isdigit() else 0, UNKNOWN)
        raise GrpcError(code, f"unexpected HTTP status code received from server: {status or 'none'}")
    kind = dict(headers).get("content-type", "")
    if not kind.startswith("application/grpc"):
        raise GrpcError(INTERNAL, f"unexpected content-type {kind!r}: not a gRPC server")


def _result(trailers: list[tuple[str, str]] | None, body: bytes) -> bytes:
    fields = dict(trailers or ())
    status = fields.get("grpc-status")
    if status is None:
        raise GrpcError(INTERNAL, "server closed the stream without sending trailers")
    code = int(status) if status.isdigit() else UNKNOWN
    if code != OK:
        raise GrpcError(code, _percent_decode(fields.get("grpc-message", "")))
    if len(body) < 5:
        raise GrpcError(INTERNAL, "response has no message")
    compressed, length = body[0], struct.unpack(">I", body[1:5])[0]
    if compressed:
        raise GrpcError(INTERNAL, "compressed response (none was asked for)")
    if len(body) != 5 + length:
        raise GrpcError(INTERNAL, f"response length {len(body) - 5} does not match its prefix {length}")
    return body[5:]


def _percent_decode(text: str) -> str:
    """grpc-message is percent-encoded UTF-8 (gRPC over HTTP/2, "Responses")."""
    if "%" not in text:
        return text
    raw = text.encode()
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] == 0x25 and _is_hex(raw[i + 1:i + 3]):
            out.append(int(raw[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode("utf-8", "replace")


def _is_hex(pair: bytes) -> bool:
    return len(pair) == 2 and all(c in b"0123456789abcdefABCDEF" for c in pair)
