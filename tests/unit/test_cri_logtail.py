"""Container log tails read from the CRI log file: pieces joined like crictl, bounded in lines and
bytes, read from the end (a huge file costs what is kept, not its size)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdh.composer.cri import logtail

TS = "2024-06-10T06:13:20.123456789Z"


def write_log(path, records) -> str:
    with open(path, "wb") as f:
        for stream, tag, text in records:
            f.write(f"{TS} {stream} {tag} ".encode() + (text if isinstance(text, bytes) else text.encode())
                    + b"\n")
    return str(path)


def reference(records, lines: int) -> bytes:
    """Forward, whole-file: join pieces per stream; lines in the order they end; the last ``lines``."""
    pending: dict[str, list] = {}
    done = []  # (position, text)
    for pos, (stream, tag, text) in enumerate(records):
        text = text if isinstance(text, bytes) else text.encode()
        pieces, _ = pending.get(stream, ([], None))
        pieces.append(text)
        pending[stream] = (pieces, pos)
        if tag == "F":
            done.append((pos, b"".join(pieces) + b"\n"))
            del pending[stream]
    done += [(pos, b"".join(pieces)) for pieces, pos in pending.values()]  # unfinished at the end
    done.sort()
    return b"".join(text for _, text in done[-lines:]) if lines else b""


def test_pieces_are_joined_per_stream_in_file_order(tmp_path):
    records = [("stdout", "F", "one"), ("stdout", "P", "tw"), ("stderr", "F", "err"), ("stdout", "P", "o "),
               ("stdout", "F", "done"), ("stderr", "P", "unfinished")]
    path = write_log(tmp_path / "0.log", records)
    assert logtail.tail(path, 10, 1 << 20) == (b"one\nerr\ntwo done\nunfinished", False)
    assert logtail.tail(path, 2, 1 << 20) == (b"two done\nunfinished", False)
    assert logtail.tail(path, 1, 1 << 20) == (b"unfinished", False)
    assert logtail.tail(path, 0, 1 << 20) == (b"", False)


def test_empty_text_tags_with_flags_and_bad_records(tmp_path):
    path = tmp_path / "0.log"
    path.write_bytes(f"{TS} stdout F \n{TS} stdout F\nnot a record\n\n{TS} stdin F x\n{TS} stdout X y\n"
                     f"{TS} stdout P:future a\n{TS} stdout F:future b\n".encode())
    assert logtail.tail(str(path), 10, 1 << 20) == (b"\n\nab\n", False)


def test_docker_json_log_lines(tmp_path):
    path = tmp_path / "0.log"
    path.write_text('{"log":"hello\\n","stream":"stdout","time":"t"}\n'
                    '{"log":"par","stream":"stderr","time":"t"}\n'
                    '{"log":"tial\\n","stream":"stderr","time":"t"}\n'
                    '{"log":"\\u00e9\\n","stream":"stdout","time":"t"}\n'
                    '{"broken\n')
    assert logtail.tail(str(path), 10, 1 << 20) == ("hello\npartial\n\u00e9\n".encode(), False)


def test_bytes_are_bounded_newest_kept_from_a_line_start(tmp_path):
    records = [("stdout", "F", f"line {i:04d}") for i in range(100)]
    path = write_log(tmp_path / "0.log", records)
    data, cut = logtail.tail(path, 50, 64)
    assert cut and len(data) <= 64
    assert data.endswith(b"line 0099\n") and data.startswith(b"line ")
    assert data == b"".join(f"line {i:04d}\n".encode() for i in range(100 - len(data) // 10, 100))


def test_one_line_longer_than_the_bound_keeps_its_end(tmp_path):
    path = write_log(tmp_path / "0.log", [("stdout", "F", "old"), ("stdout", "F", "x" * 5000 + "END")])
    data, cut = logtail.tail(path, 5, 100)
    assert cut and data == b"x" * 96 + b"END\n"


def test_a_huge_file_is_read_from_the_end_only(tmp_path, monkeypatch):
    path = tmp_path / "0.log"
    with open(path, "wb") as f:
        chunk = b"".join(f"{TS} stdout F filler line {i}\n".encode() for i in range(10000))
        for _ in range(60):  # ~ 60 * 0.6 MB
            f.write(chunk)
        f.write(f"{TS} stderr F the last words\n".encode())
    size = os.path.getsize(path)
    read = []
    real = os.pread
    monkeypatch.setattr(logtail.os, "pread", lambda fd, n, off: read.append(n) or real(fd, n, off))
    data, cut = logtail.tail(str(path), 3, 1 << 20)
    assert data == b"filler line 9998\nfiller line 9999\nthe last words\n" and not cut
    assert sum(read) <= logtail.MARGIN + 2 * logtail.BLOCK < size / 100


def test_a_file_of_garbage_stops_at_the_scan_bound(tmp_path, monkeypatch):
    path = tmp_path / "0.log"
    with open(path, "wb") as f:
        f.truncate(1 << 30)  # 1 GiB of NUL bytes (sparse), no newline anywhere
        f.seek(0, os.SEEK_END)
        f.write(f"\n{TS} stdout F after the hole\n".encode())
    read = []
    real = os.pread
    monkeypatch.setattr(logtail.os, "pread", lambda fd, n, off: read.append(n) or real(fd, n, off))
    data, cut = logtail.tail(str(path), 500, 1 << 16)
    assert data == b"after the hole\n" and cut
    assert sum(read) <= (1 << 16) + logtail.HEADER_SLACK + 2 * logtail.BLOCK


def test_a_file_with_no_record_in_reach(tmp_path):
    path = tmp_path / "0.log"
    path.write_bytes(b"x" * 300_000)
    assert logtail.tail(str(path), 10, 1000) == (b"", True)
    path.write_bytes(b"")
    assert logtail.tail(str(path), 10, 1000) == (b"", False)


def test_endless_empty_pieces_stop_at_the_scan_bound(tmp_path, monkeypatch):
    path = tmp_path / "0.log"
    with open(path, "wb") as f:
        f.write(f"{TS} stdout F first\n".encode())
        f.write(f"{TS} stdout P \n".encode() * 200_000)  # never ends, adds nothing
        f.write(f"{TS} stdout F end\n".encode())
    read = []
    real = os.pread
    monkeypatch.setattr(logtail.os, "pread", lambda fd, n, off: read.append(n) or real(fd, n, off))
    data, cut = logtail.tail(str(path), 1, 4096)
    assert data == b"end\n" and cut
    assert sum(read) <= logtail.MARGIN + 2 * logtail.BLOCK


def test_a_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        logtail.tail(str(tmp_path / "nope.log"), 10, 100)


record_text = st.text(st.characters(min_codepoint=32, max_codepoint=0x24F), max_size=12)
records_strategy = st.lists(st.tuples(st.sampled_from(["stdout", "stderr"]), st.sampled_from(["F", "P"]),
                                      record_text), max_size=40)


@settings(max_examples=300, deadline=None)
@given(records=records_strategy, lines=st.integers(0, 45), block=st.sampled_from([7, 64, 65536]))
def test_matches_a_whole_file_reading(tmp_path_factory, records, lines, block):
    path = write_log(tmp_path_factory.mktemp("log") / "0.log", records)
    old = logtail.BLOCK
    logtail.BLOCK = block  # small blocks: records and pieces straddle block edges
    try:
        data, cut = logtail.tail(path, lines, 1 << 20)
    finally:
        logtail.BLOCK = old
    assert (data, cut) == (reference(records, lines), False)


@settings(max_examples=200, deadline=None)
@given(records=records_strategy, lines=st.integers(1, 45), max_bytes=st.integers(1, 80))
def test_a_byte_bound_keeps_a_true_tail(tmp_path_factory, records, lines, max_bytes):
    path = write_log(tmp_path_factory.mktemp("log") / "0.log", records)
    data, cut = logtail.tail(path, lines, max_bytes)
    full = reference(records, lines)
    assert len(data) <= max_bytes
    assert full.endswith(data)
    assert cut == (data != full)
