"""The crash signature's normal form, version 1 (cdh/stack/signature.py; README "Stack traces and
signatures"): what it keeps, what it drops, and that its output is versioned and stable."""

from __future__ import annotations

import hashlib

from cdh.stack.signature import module_name, normal_form, signature, top_frame

BUILD_ID = "ab" * 20


def frame(module, function=None, offset="0x10", **kw):
    return {"module": module, "function": function, "offset": offset, "build_id": BUILD_ID, **kw}


def test_the_runtime_goes_recursion_folds_clone_suffixes_are_cut():
    frames = [frame("/lib/libc.so.6", "raise"), frame("/lib/libc.so.6"), frame("/app/srv", "check.cold"),
              frame("/app/srv", "walk"), frame("/app/srv", "walk.isra.0"), frame("/usr/lib/libstdc++.so.6"),
              frame("/app/srv", "main"), frame("/lib/libc.so.6", "__libc_start_main")]
    assert normal_form(frames, self_sent=True) == ["srv!check", "srv!walk", "srv!main"]


def test_a_static_binarys_abort_path_goes_by_function_name():
    frames = [frame("/app/static", "raise"), frame("/app/static", "abort"),
              frame("/app/static", "__assert_fail"), frame("/app/static", "check"),
              frame("/app/static", "main")]
    assert normal_form(frames, self_sent=True) == ["static!check", "static!main"]


def test_after_a_self_sent_signal_it_restarts_at_the_frame_the_handler_interrupted():
    frames = [frame("/lib/libc.so.6", "abort"), frame("/app/srv", "on_segv"),
              frame("/lib/libc.so.6", None, signal_frame=True), frame("/app/srv", "bad"),
              frame("/app/srv", "main")]
    assert normal_form(frames, self_sent=True) == ["srv!bad", "srv!main"]
    # a fault inside a handler (not sent by the process) is the handler's own bug
    assert normal_form(frames, self_sent=False) == ["srv!on_segv", "srv!bad", "srv!main"]


def test_without_names_the_build_id_and_link_time_offset_else_the_module():
    assert normal_form([frame("/app/srv", None, "0x1139")], self_sent=False) == [f"{BUILD_ID}+0x1139"]
    no_id = dict(frame("/app/srv", None, "0x1139"), build_id=None)
    assert normal_form([no_id], self_sent=False) == ["srv+0x1139"]


def test_frames_in_no_file_say_nothing_stable():
    jit = {"pc": "0x7f0012345678"}
    assert normal_form([jit, frame("/app/srv", "run")], self_sent=False) == ["srv!run"]
    assert normal_form([jit], self_sent=False) == []
    assert signature([]) is None and top_frame([]) is None


def test_only_runtime_frames_are_kept_as_they_are():
    frames = [frame("/lib/libc.so.6", "__pthread_kill_implementation"), frame("/lib/libc.so.6", "raise")]
    assert normal_form(frames, self_sent=True) == ["libc.so!__pthread_kill_implementation", "libc.so!raise"]


def test_three_frames_at_most():
    frames = [frame("/app/srv", f"f{i}") for i in range(6)]
    assert normal_form(frames, self_sent=False) == ["srv!f0", "srv!f1", "srv!f2"]


def test_the_signature_is_versioned_and_stable():
    # The exact value is the contract: a change here is a new version, never the same prefix.
    tokens = ["srv!check", "srv!walk", "srv!main"]
    assert signature(tokens) == "1-00dafd8f8f3c676d"
    text = b"cdh-signature-1\nsrv!check\nsrv!walk\nsrv!main"
    assert signature(tokens) == "1-" + hashlib.blake2b(text, digest_size=8).hexdigest()
    assert signature(["srv!check"]) != signature(["srv!walk"])
    assert len(signature(["x"])) == 18


def test_module_names_lose_versions_and_deleted_marks():
    assert module_name("/usr/lib/x86_64-linux-gnu/libssl.so.3") == "libssl.so"
    assert module_name("/opt/app/libfoo.so.1.2.3 (deleted)") == "libfoo.so"
    assert module_name("/usr/bin/python3.11") == "python3.11"
    assert module_name(None) == "?"


def test_the_top_frame_shortens_a_build_id():
    assert top_frame([f"{BUILD_ID}+0x1139"]) == "abababababab+0x1139"
    assert top_frame(["srv!" + "x" * 300]) == ("srv!" + "x" * 300)[:128]
