"""A scripted HTTP/2 gRPC server on a unix socket, for the client's unit tests.

It answers each request (HEADERS + DATA ending the stream) with the bytes ``script(sid, encoder)``
returns (None: never answer), coding its headers with the reference ``hpack`` encoder, and records
what the client sent. ``ok_reply(body, ...)`` is a script for a successful call in the frame shapes a
server may choose.
"""

from __future__ import annotations

import socket
import struct
import threading

import hpack as reference
import pytest

from cdh.composer.cri import h2


def frame(ftype: int, flags: int, sid: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((ftype, flags)) + sid.to_bytes(4, "big") + payload


def grpc_message(body: bytes) -> bytes:
    return b"\0" + struct.pack(">I", len(body)) + body


class ScriptedServer:
    """Accepts connections; for each request (HEADERS+DATA ending the stream) runs ``script(sid, enc)``
    and writes what it returns. Records what the client sent."""

    def __init__(self, path: str, script) -> None:
        self.path = path
        self.script = script
        self.requests: list[list[tuple[str, str]]] = []
        self.frames: list[tuple[int, int, int]] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.listener.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        encoder, decoder = reference.Encoder(), reference.Decoder()
        with conn:
            try:
                assert _recv(conn, 24) == h2.PREFACE
                while True:
                    head = _recv(conn, 9)
                    length, ftype, flags = int.from_bytes(head[:3], "big"), head[3], head[4]
                    sid = int.from_bytes(head[5:], "big")
                    payload = _recv(conn, length)
                    self.frames.append((ftype, flags, sid))
                    if ftype == h2.HEADERS:
                        self.requests.append(decoder.decode(payload))
                    if ftype == h2.DATA and flags & h2.END_STREAM:
                        reply = self.script(sid, encoder)
                        if reply is None:
                            continue  # hang: never answer
                        conn.sendall(reply)
            except (OSError, ConnectionError, EOFError):
                return


def _recv(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def ok_reply(body: bytes, *, pad: bool = False, split: bool = False, continuation: bool = False):
    def script(sid: int, enc) -> bytes:
        out = frame(h2.SETTINGS, 0, 0, struct.pack(">HI", h2.SETTINGS_MAX_FRAME_SIZE, 16384))
        out += frame(h2.PING, 0, 0, b"12345678")
        out += frame(h2.HEADERS, h2.END_HEADERS, sid, enc.encode(
            [(":status", "200"), ("content-type", "application/grpc")], huffman=True))
        msg = grpc_message(body)
        pieces = [msg[:3], msg[3:]] if split else [msg]
        for piece in pieces:
            if pad:
                out += frame(h2.DATA, h2.PADDED, sid, bytes((4,)) + piece + b"\0" * 4)
            else:
                out += frame(h2.DATA, 0, sid, piece)
        block = enc.encode([("grpc-status", "0"), ("grpc-message", "")], huffman=True)
        if continuation:
            out += frame(h2.HEADERS, h2.END_STREAM, sid, block[:2])
            out += frame(h2.CONTINUATION, h2.END_HEADERS, sid, block[2:])
        else:
            out += frame(h2.HEADERS, h2.END_STREAM | h2.END_HEADERS, sid, block)
        return out
    return script


@pytest.fixture
def serve(tmp_path):
    """``serve(script)`` starts a ScriptedServer on a socket in tmp_path; all are closed after the test."""
    servers = []

    def start(script) -> ScriptedServer:
        server = ScriptedServer(str(tmp_path / f"s{len(servers)}.sock"), script)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
