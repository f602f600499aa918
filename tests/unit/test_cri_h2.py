"""The unary gRPC client on unix sockets: failures become clear gRPC codes; the HTTP/2 a server may
send (padding, CONTINUATION, trailers-only, Huffman-coded headers, GOAWAY, PING) is understood.

The servers here are scripted byte streams on a real unix socket (the reference `hpack` encoder
codes their headers); tests/runtime checks the same client against a real containerd.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from cdh.composer.cri import h2
from cdh.composer.cri.h2 import GrpcError
from tests.support import h2server
from tests.support.h2server import frame, grpc_message, ok_reply

serve = h2server.serve  # the fixture

METHOD = "/runtime.v1.RuntimeService/Version"


def test_a_call_sends_grpc_headers_and_gets_the_message(serve):
    server = serve(ok_reply(b"\x0a\x02v1"))
    channel = h2.Channel(server.path)
    assert channel.unary(METHOD, b"\x0a\x02v1", timeout=5) == b"\x0a\x02v1"
    headers = dict(server.requests[0])
    assert headers[":method"] == "POST" and headers[":path"] == METHOD
    assert headers["content-type"] == "application/grpc" and headers["te"] == "trailers"
    assert headers["grpc-timeout"].endswith("m") and 0 < int(headers["grpc-timeout"][:-1]) <= 5001
    # the client acknowledged the server's SETTINGS and answered its PING (read after the reply)
    deadline = time.monotonic() + 10
    while not {(h2.SETTINGS, h2.ACK, 0), (h2.PING, h2.ACK, 0)} <= set(server.frames):
        assert time.monotonic() < deadline, server.frames
        time.sleep(0.01)
    channel.close()


@pytest.mark.parametrize("shape", [{"pad": True}, {"split": True}, {"continuation": True},
                                   {"pad": True, "split": True, "continuation": True}])
def test_frames_the_server_may_choose(serve, shape):
    body = bytes(range(256)) * 3
    server = serve(ok_reply(body, **shape))
    channel = h2.Channel(server.path)
    for _ in range(3):  # several calls on one connection: stream ids 1, 3, 5 and one HPACK table
        assert channel.unary(METHOD, b"", timeout=5) == body
    assert [sid for ftype, _, sid in server.frames if ftype == h2.HEADERS] == [1, 3, 5]


def test_a_large_response_is_read_whole(serve):
    body = b"x" * (3 << 20)  # far past the default 64 KiB windows

    def script(sid, enc):
        out = frame(h2.HEADERS, h2.END_HEADERS, sid, enc.encode(
            [(":status", "200"), ("content-type", "application/grpc")]))
        msg = grpc_message(body)
        for i in range(0, len(msg), 16384):
            out += frame(h2.DATA, 0, sid, msg[i:i + 16384])
        return out + frame(h2.HEADERS, 5, sid, enc.encode([("grpc-status", "0")]))

    channel = h2.Channel(serve(script).path)
    assert channel.unary(METHOD, b"", timeout=10) == body
    with pytest.raises(GrpcError, match=r"ResourceExhausted.*over 1000 bytes") as err:
        channel.unary(METHOD, b"", timeout=10, max_bytes=1000)
    assert err.value.code == h2.RESOURCE_EXHAUSTED


def test_a_status_in_trailers_only_is_the_error(serve):
    def script(sid, enc):
        return frame(h2.HEADERS, h2.END_STREAM | h2.END_HEADERS, sid, enc.encode(
            [(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "5"),
             ("grpc-message", "an error occurred when try to find container \"abc\": not found %E2%9C%93")],
            huffman=True))

    channel = h2.Channel(serve(script).path)
    with pytest.raises(GrpcError) as err:
        channel.unary(METHOD, b"", timeout=5)
    assert err.value.code == h2.NOT_FOUND and err.value.code_name == "NotFound"
    assert str(err.value) == ('rpc error: code = NotFound desc = an error occurred when try to find '
                              'container "abc": not found \u2713')
    # the connection is still good after an error status
    with pytest.raises(GrpcError, match="NotFound"):
        channel.unary(METHOD, b"", timeout=5)


def test_no_socket_is_unavailable(tmp_path):
    path = str(tmp_path / "missing.sock")
    with pytest.raises(GrpcError) as err:
        h2.Channel(path).unary(METHOD, b"", timeout=1)
    assert err.value.code == h2.UNAVAILABLE
    assert str(err.value) == (f"rpc error: code = Unavailable desc = connection error: dial unix {path}: "
                              "connect: No such file or directory")


def test_a_socket_nobody_listens_on_is_unavailable(tmp_path):
    path = str(tmp_path / "dead.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()  # the file stays, nobody listens: what a crashed runtime leaves
    with pytest.raises(GrpcError, match=r"Unavailable.*Connection refused"):
        h2.Channel(path).unary(METHOD, b"", timeout=1)


def test_a_hung_runtime_is_deadline_exceeded_and_the_next_call_reconnects(serve):
    answers = iter([None, "ok"])

    def script(sid, enc):
        return None if next(answers) is None else ok_reply(b"late")(sid, enc)

    server = serve(script)
    channel = h2.Channel(server.path)
    with pytest.raises(GrpcError) as err:
        channel.unary(METHOD, b"", timeout=0.3)
    assert err.value.code == h2.DEADLINE_EXCEEDED
    assert str(err.value) == "rpc error: code = DeadlineExceeded desc = context deadline exceeded"
    assert channel.sock is None  # dropped: a late answer must not be read as the next call's
    assert channel.unary(METHOD, b"", timeout=5) == b"late"


def test_a_server_that_accepts_and_says_nothing_times_out(tmp_path):
    path = str(tmp_path / "mute.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)  # never accepted: connect succeeds (backlog), nothing is ever read
    try:
        with pytest.raises(GrpcError, match="DeadlineExceeded"):
            h2.Channel(path).unary(METHOD, b"", timeout=0.3)
    finally:
        listener.close()


def test_a_kept_connection_the_runtime_closed_is_replaced(serve):
    server = serve(ok_reply(b"ok"))
    channel = h2.Channel(server.path)
    assert channel.unary(METHOD, b"", timeout=5) == b"ok"
    channel.sock.shutdown(socket.SHUT_RDWR)  # as if the runtime restarted while we were idle
    assert channel.unary(METHOD, b"", timeout=5) == b"ok"
    assert [sid for ftype, _, sid in server.frames if ftype == h2.HEADERS] == [1, 1]


def test_goaway_before_our_stream_is_unavailable(serve):
    def script(sid, enc):
        return frame(h2.GOAWAY, 0, 0, struct.pack(">II", 0, 0) + b"shutting down")

    with pytest.raises(GrpcError, match=r"Unavailable.*GOAWAY, code 0: shutting down"):
        h2.Channel(serve(script).path).unary(METHOD, b"", timeout=5)


def test_goaway_after_our_stream_finishes_the_call_then_reconnects(serve):
    def script(sid, enc):
        return frame(h2.GOAWAY, 0, 0, struct.pack(">II", sid, 0)) + ok_reply(b"done")(sid, enc)

    server = serve(script)
    channel = h2.Channel(server.path)
    assert channel.unary(METHOD, b"", timeout=5) == b"done"
    assert channel.unary(METHOD, b"", timeout=5) == b"done"  # on a new connection: stream 1 again
    assert [sid for ftype, _, sid in server.frames if ftype == h2.HEADERS] == [1, 1]


def test_a_connection_closed_mid_call_is_unavailable(serve):
    def script(sid, enc):
        raise OSError("drop")  # the server thread ends: the socket closes

    with pytest.raises(GrpcError, match=r"Unavailable.*closed"):
        h2.Channel(serve(script).path).unary(METHOD, b"", timeout=5)


def test_something_that_is_not_grpc(tmp_path):
    path = str(tmp_path / "http1.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def answer():
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    try:
        with pytest.raises(GrpcError) as err:
            h2.Channel(path).unary(METHOD, b"", timeout=5)
        assert err.value.code in (h2.INTERNAL, h2.UNAVAILABLE)
    finally:
        listener.close()


def test_http_status_and_content_type_are_checked(serve):
    def script(sid, enc):
        return frame(h2.HEADERS, h2.END_STREAM | h2.END_HEADERS, sid,
                     enc.encode([(":status", "503"), ("content-type", "text/plain")]))

    with pytest.raises(GrpcError) as err:
        h2.Channel(serve(script).path).unary(METHOD, b"", timeout=5)
    assert err.value.code == h2.UNAVAILABLE and "503" in err.value.message
