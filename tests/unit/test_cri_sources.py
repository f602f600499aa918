"""How the composer picks its way to the runtime (cdh.composer.cri.sources.Link): the CRI socket when it
answers Version, crictl when no socket answers, nothing when a socket hangs (crictl would hang too).

The sockets are scripted HTTP/2 servers (tests/support/h2server.py); tests/runtime does the same
against a real containerd.
"""

from __future__ import annotations

import time

import pytest

from cdh.composer.cri import CriError, CriNotFound, OutOfBudget, api, h2, protowire
from cdh.composer.cri.sources import CrictlSource, GrpcSource, Link
from cdh.config import load
from tests.support import h2server
from tests.support.h2server import frame, ok_reply

serve = h2server.serve  # the fixture

VERSION = protowire.encode(api.VersionResponse, {"version": "0.1.0", "runtimeName": "containerd",
                                                    "runtimeVersion": "v1.7.20", "runtimeApiVersion": "v1"})


def status_only(code: int, message: str):
    def script(sid, enc):
        return frame(h2.HEADERS, h2.END_STREAM | h2.END_HEADERS, sid, enc.encode(
            [(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", str(code)),
             ("grpc-message", message)]))
    return script


def link_for(tmp_path, endpoint: str, crictl: bool = False, timeout: str = "5s") -> Link:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if crictl:
        exe = bin_dir / "crictl"
        exe.write_text("#!/bin/sh\nexit 1\n")
        exe.chmod(0o755)
    settings = load([{"CDH_HOST_DIR": str(tmp_path), "CDH_CRI_ENDPOINT": endpoint,
                      "CDH_CRICTL_PATH": str(bin_dir), "CDH_CRI_TIMEOUT": timeout}], scope="composer")
    return Link(settings, deadline=time.monotonic() + 60)


def test_a_socket_that_answers_is_used(tmp_path, serve):
    server = serve(ok_reply(VERSION))
    link = link_for(tmp_path, f"unix://{server.path}", crictl=True)
    source = link.open()
    assert isinstance(source, GrpcSource) and link.open() is source
    assert link.via == f"cri unix://{server.path} (containerd v1.7.20)"
    assert link.calls == 1 and dict(server.requests[0])[":path"] == "/runtime.v1.RuntimeService/Version"


def test_no_socket_falls_back_to_crictl(tmp_path):
    link = link_for(tmp_path, f"unix://{tmp_path}/none.sock", crictl=True)
    assert isinstance(link.open(), CrictlSource)
    assert link.via == f"crictl {tmp_path}/bin/crictl"


def test_not_a_cri_runtime_is_passed_over(tmp_path, serve):
    server = serve(status_only(12, "unknown service runtime.v1.RuntimeService"))
    assert isinstance(link_for(tmp_path, server.path, crictl=True).open(), CrictlSource)
    other = tmp_path / "no-crictl"
    other.mkdir()
    link = link_for(other, server.path)
    with pytest.raises(CriError) as err:
        link.open()
    assert str(err.value) == (f"no container runtime answered ({server.path}: rpc error: code = "
                              "Unimplemented desc = unknown service runtime.v1.RuntimeService) and crictl "
                              "was not found (CDH_CRICTL_PATH)")


def test_a_hung_socket_gets_no_crictl_fallback(tmp_path, serve):
    server = serve(lambda sid, enc: None)  # accepts, reads, never answers
    link = link_for(tmp_path, server.path, crictl=True, timeout="300ms")
    with pytest.raises(CriError, match=f"the container runtime at {server.path} did not answer in 0.3s"):
        link.open()
    with pytest.raises(CriError, match="did not answer"):
        link.open()  # decided once: no second wait
    assert link.calls == 1 and link.source is None


def test_a_step_budget_cut_is_tried_again_later(tmp_path, serve):
    server = serve(lambda sid, enc: None)
    link = link_for(tmp_path, server.path, crictl=True, timeout="5s")
    with pytest.raises(OutOfBudget):
        link.open(budget=0.2)
    assert link.failure is None and link.source is None  # not decided: gather() asks again


def test_only_unix_endpoints(tmp_path):
    link = link_for(tmp_path, "tcp://localhost:10010")
    with pytest.raises(CriError, match="only unix sockets are supported"):
        link.open()


def test_a_call_that_times_out_marks_the_runtime_hung(tmp_path, serve):
    answers = iter([ok_reply(VERSION), lambda sid, enc: None])
    server = serve(lambda sid, enc: next(answers)(sid, enc))
    link = link_for(tmp_path, server.path, timeout="300ms")
    source = link.open()
    with pytest.raises(CriError, match=r"CRI ContainerStatus 000000000000: timed out after 0\.3s"):
        source.container("0" * 64)
    with pytest.raises(CriError, match="skipped, an earlier call timed out"):
        source.sandbox("1" * 64)
    assert link.calls == 2


def test_not_found_is_its_own_error(tmp_path, serve):
    not_found = status_only(5, 'an error occurred when try to find container "x": not found')
    answers = iter([ok_reply(VERSION), not_found])
    server = serve(lambda sid, enc: next(answers)(sid, enc))
    source = link_for(tmp_path, server.path).open()
    with pytest.raises(CriNotFound, match="code = NotFound"):
        source.container("x" * 64)


def test_ibms_crio_endpoint_is_a_hint_tried_first_then_the_usual_sockets(tmp_path, serve, monkeypatch):
    """IBM's chart sets CRIO_ENDPOINT to containerd's socket everywhere, OpenShift (CRI-O) included."""
    from cdh.composer.cri import grpc

    hint = serve(status_only(12, "unknown service runtime.v1.RuntimeService"))  # not a CRI runtime
    usual = serve(ok_reply(VERSION))
    monkeypatch.setattr(grpc, "DEFAULT_SOCKETS", (str(tmp_path / "absent.sock"), usual.path))
    assert grpc.candidates("", f"unix://{hint.path}") == [hint.path, usual.path]
    assert grpc.candidates("", "unix:///nonexistent/containerd.sock") == [usual.path]
    assert grpc.candidates("", "tcp://localhost:1") == [usual.path]
    assert grpc.candidates(f"unix://{hint.path}", f"unix://{usual.path}") == [hint.path]  # CDH_CRI_ENDPOINT
    settings = load([{"CDH_HOST_DIR": str(tmp_path), "CRIO_ENDPOINT": f"unix://{hint.path}",
                      "CDH_CRICTL_PATH": str(tmp_path / "none")}], scope="composer")
    link = Link(settings, deadline=time.monotonic() + 60)
    assert isinstance(link.open(), GrpcSource) and link.via.startswith(f"cri unix://{usual.path} ")
    assert len(hint.requests) == 1  # asked first
