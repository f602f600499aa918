"""The kernel's -X=value arguments: parsed tolerantly, never an exception."""

from __future__ import annotations

from cdh.composer import kernel


def test_full_pattern_is_parsed_and_typed():
    k = kernel.parse(["-c=18446744073709551615", "-e=nginx", "-p=7", "-P=4242", "-s=11",
                      "-t=1718000000", "-h=web-0", "-E=!usr!sbin!nginx", "-d=/cores"])
    assert (k.limit_size, k.exe_name, k.hostname) == ("18446744073709551615", "nginx", "web-0")
    assert (k.pid, k.host_pid, k.signal, k.timestamp) == (7, 4242, 11, 1718000000)
    assert k.pathname == "/usr/sbin/nginx"
    assert k.core_dir == "/cores"
    assert k.ignored == []


def test_missing_flags_are_none_and_timestamp_defaults_to_now():
    k = kernel.parse(["-e=x"])
    assert k.pid is None and k.host_pid is None and k.signal is None
    assert k.hostname == "" and k.pathname == "" and k.core_dir is None
    assert not k.timestamp_given and k.timestamp > 1_600_000_000


def test_unknown_and_garbage_arguments_are_kept_aside():
    k = kernel.parse(["-z=1", "--weird", "-p=notanumber", "-s=6"])
    assert k.ignored == ["-z=1", "--weird"]
    assert k.pid is None and k.signal == 6


def test_value_with_equals_and_empty_values():
    k = kernel.parse(["-e=a=b", "-h=", "-E="])
    assert k.exe_name == "a=b" and k.hostname == "" and k.pathname == ""


def test_words_split_by_old_kernels_are_glued_back():
    # Before Linux 5.3 the expanded pattern was split on spaces: %e "my prog" became two words.
    k = kernel.parse(["-e=my", "prog", "-p=3"])
    assert k.exe_name == "my prog" and k.pid == 3


def test_relative_core_dir_becomes_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert kernel.parse(["-d=cores"]).core_dir == str(tmp_path / "cores")


def test_double_dash_form_is_accepted():
    assert kernel.parse(["--p=9"]).pid == 9


def test_bytes_that_are_not_utf8_become_escapes():
    # comm cut by the kernel at 15 bytes inside "💥", as Python hands it over (surrogateescape)
    import os

    k = kernel.parse([os.fsdecode(b"-e=\xf0\x9f\x92\xa5\xf0\x9f\x92"), os.fsdecode(b"-h=\xff.x")])
    assert k.exe_name == "💥\\xf0\\x9f\\x92" and k.hostname == "\\xff.x"
    k.exe_name.encode()  # every writer can take it now


def test_ibms_argument_forms_are_understood():
    # IBM's composer tests call it so (clap): space-separated values, no -P
    k = kernel.parse(["-c", "1000000000", "-e", "node", "-p", "4", "-s", "10", "-E", "!target!debug!app",
                      "-d", "/out", "-t", "1588462466", "-h", "crashing-app-7d4b9c-x2x9q"])
    assert (k.limit_size, k.exe_name, k.pid, k.signal) == ("1000000000", "node", 4, 10)
    assert k.timestamp == 1588462466
    assert (k.hostname, k.core_dir, k.pathname) == ("crashing-app-7d4b9c-x2x9q", "/out", "/target/debug/app")
    assert k.given["pathname"] == "!target!debug!app" and k.given["pid"] == "4" and k.ignored == []


def test_long_names_attached_values_and_ibms_unused_flags():
    k = kernel.parse(["--pid=4", "--signal", "10", "-enode", "-T", "600", "-D", "--test-threads=1",
                      "--hostname", "web-0"])
    assert (k.pid, k.signal, k.exe_name, k.hostname) == (4, 10, "node", "web-0")
    assert k.ignored == []


def test_values_are_kept_as_given():
    k = kernel.parse(["-p=0004", "-s=10", "-t=1588462466", "-E=!usr!bin!a b"])
    assert k.given == {"pid": "0004", "signal": "10", "timestamp": "1588462466", "pathname": "!usr!bin!a b"}
    assert k.pid == 4 and k.pathname == "/usr/bin/a b"
