"""The on-disk contract (cdh/ondisk.py): the names every writer and reader shares, and dump-info."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from cdh import ondisk
from cdh.composer import naming
from cdh.config.table import DEFAULT_FILENAME_TEMPLATE


def test_part_and_finished_zip_names():
    assert ondisk.part_name("x-dump") == ".x-dump.zip.part" and ondisk.zip_name("x-dump") == "x-dump.zip"
    assert ondisk.is_part(".x-dump.zip.part") and not ondisk.is_part("x.zip")
    assert not ondisk.is_part(".zip.part") and not ondisk.is_part("x.zip.part")
    assert ondisk.zip_name_of_part(".x-dump.zip.part") == "x-dump.zip"
    assert ondisk.is_finished_zip("x-dump.zip")
    assert not ondisk.is_finished_zip(".x-dump.zip.part") and not ondisk.is_finished_zip(".x.zip")
    assert not ondisk.is_finished_zip("x.zip.tmp")


def test_host_dir_paths():
    h = ondisk.HostDir("/h")
    assert (h.composer, h.composer_env, h.composer_log, h.rotated_log) == (
        "/h/cdc", "/h/composer.env", "/h/composer.log", "/h/composer.log.1")
    assert (h.log_position, h.rate_limit_state, h.crictl_config, h.runtimes) == (
        "/h/state/composer-log.position", "/h/ratelimit.json", "/h/crictl.yaml", "/h/runtime")
    assert (h.state, h.legacy_log_position) == ("/h/state", "/h/.composer-log.position")
    assert h.backup("kernel.core_pattern") == "/h/core_pattern.bak"
    assert h.runtime_id("#!/h/runtime/0123abcd/lib/ld.so /h/runtime/0123abcd/bin/python3\n") == "0123abcd"
    assert h.runtime_id("#!/usr/bin/python3 -IS\n") is None and h.runtime_id("") is None


def test_entry_names():
    assert ondisk.log_entry(3) == "-3.log" and ondisk.image_info_entry(3) == "-3-image-info.json"
    assert ondisk.container_index("N-3.log") == 3 and ondisk.container_index("N-12-image-info.json") == 12
    assert ondisk.container_index("N-pod-info.json") is None and ondisk.container_index("N.core") is None
    assert ondisk.event_file_name("u-1") == "u-1-event.json"


def test_dump_info_fields_are_ibms_first_and_unique():
    assert ondisk.DUMP_INFO_FIELDS[:len(ondisk.IBM_FIELDS)] == ondisk.IBM_FIELDS
    assert len(set(ondisk.DUMP_INFO_FIELDS)) == len(ondisk.DUMP_INFO_FIELDS)


def _zip(entries: dict[str, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return io.BytesIO(buf.getvalue())


def test_read_dump_info_problems_are_one_clear_error():
    with pytest.raises(ondisk.DumpInfoError, match="dump-info"):
        ondisk.read_dump_info(_zip({"x.core": b"core"}))
    with pytest.raises(ondisk.DumpInfoError, match="not a readable zip"):
        ondisk.read_dump_info(io.BytesIO(b"PK\x03\x04garbage"))
    with pytest.raises(ondisk.DumpInfoError, match="too big"):
        ondisk.read_dump_info(_zip({"x-dump-info.json": b" " * (ondisk.MAX_DUMP_INFO_BYTES + 1)}))
    with pytest.raises(ondisk.DumpInfoError, match="not a JSON object"):
        ondisk.read_dump_info(_zip({"x-dump-info.json": b"[1]"}))
    good = _zip({"x-dump-info.json": json.dumps({"uuid": "u"}).encode()})
    assert ondisk.read_dump_info(good) == {"uuid": "u"}


def test_an_ibm_dump_info_that_is_not_json_still_reads():
    """IBM's composer wrote dump-info by hand, unescaped: a '"' in a process name broke the JSON. Such
    zips on a node taken over are still uploaded (their fields read as IBM meant them)."""
    hand_written = (b'{"uuid":"8d7f2c1e-0b7a-4a53-9d0e-3f1c2b4a5d6e", "dump_file":"n.core", "timestamp": '
                    b'"1718000000",\n        "hostname": "web-0", "exe": "my"app", "real_pid": "4", '
                    b'"signal": "11", "node_hostname": "node-1", "path": "!usr!bin!my"app" }')
    info = ondisk.read_dump_info(_zip({"n-dump-info.json": hand_written}))
    assert (info["exe"], info["path"], info["signal"]) == ('my"app', '!usr!bin!my"app', "11")
    assert ondisk.dump_int(info, "signal_number", "signal") == 11
    with pytest.raises(ondisk.DumpInfoError):
        ondisk.read_dump_info(_zip({"n-dump-info.json": b'{"uuid": "u", broken'}))


def test_the_default_zip_name_reads_back():
    values = {"uuid": "8d7f2c1e-0b7a-4a53-9d0e-3f1c2b4a5d6e", "timestamp": 1718000000, "hostname": "web-0",
              "exe_name": "my-app", "pid": 12, "signal": 11}
    name, error = naming.render(DEFAULT_FILENAME_TEMPLATE, values)
    assert error is None
    key = "node-1/" + ondisk.zip_name(name)
    assert ondisk.parse_default_name(key) == {"uuid": "8d7f2c1e-0b7a-4a53-9d0e-3f1c2b4a5d6e",
                                              "timestamp": "1718000000", "pid": "12", "signal": "11"}
    assert ondisk.parse_default_name("custom.zip") == {}
    assert ondisk.is_uuid(values["uuid"]) and not ondisk.is_uuid(name)
