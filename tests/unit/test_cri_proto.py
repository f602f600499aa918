"""cri.proto is the source of truth; the Python tables (cri/api.py, the harness's kubelet_api) must say
exactly the same, message by message and field by field. Also the codec on hand-made bytes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cdh.composer.cri import api, protowire
from cdh.composer.cri.protowire import Enum, Message
from tests.runtime import kubelet_api

PROTO = Path(api.__file__).with_name("cri.proto")
BLOCK = re.compile(r"^(message|enum)\s+(\w+)\s*\{([^{}]*)\}", re.M)  # cri.proto nests no blocks
FIELD = re.compile(r"^\s*(repeated\s+)?(map<string,\s*string>|\w+)\s+(\w+)\s*=\s*(\d+);", re.M)
ENUM_VALUE = re.compile(r"^\s*(\w+)\s*=\s*(\d+);", re.M)


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def parse_proto(text: str) -> tuple[dict, dict]:
    text = re.sub(r"//[^\n]*", "", text)
    messages, enums = {}, {}
    for m in BLOCK.finditer(text):
        kind, name, body = m.groups()
        if kind == "enum":
            enums[name] = [(n, int(v)) for n, v in ENUM_VALUE.findall(body)]
        else:
            messages[name] = {int(num): (_camel(fname), typ.replace(" ", ""), bool(rep))
                              for rep, typ, fname, num in FIELD.findall(body)}
    return messages, enums


PROTO_MESSAGES, PROTO_ENUMS = parse_proto(PROTO.read_text())
SCALARS = {protowire.STRING: "string", protowire.BOOL: "bool", protowire.INT32: "int32",
           protowire.UINT32: "uint32", protowire.INT64: "int64", protowire.UINT64: "uint64",
           protowire.BYTES: "bytes", protowire.MAP: "map<string,string>"}


def _tables(module) -> dict[str, Message]:
    return {v.name: v for v in vars(module).values() if isinstance(v, Message)}


PY_MESSAGES = {**_tables(api), **_tables(kubelet_api)}


def test_every_proto_message_has_a_table_and_back():
    assert sorted(PY_MESSAGES) == sorted(PROTO_MESSAGES)


@pytest.mark.parametrize("name", sorted(PROTO_MESSAGES))
def test_message_fields_match_the_proto(name):
    table = PY_MESSAGES[name]
    got = {}
    for fld in table.fields:
        typ = fld.type.name if fld.type is not None else SCALARS[fld.kind]
        got[fld.number] = (fld.name, typ, fld.repeated)
    assert got == PROTO_MESSAGES[name]


def test_enums_match_the_proto():
    enums = {v.name: v for v in vars(api).values() if isinstance(v, Enum)}
    assert sorted(enums) == sorted(PROTO_ENUMS)
    for name, values in PROTO_ENUMS.items():
        assert list(enumerate(enums[name].by_number)) == [(n, v) for v, n in values]


def test_every_rpc_names_messages_that_exist():
    for req, resp in re.findall(r"rpc \w+\((\w+)\) returns \((\w+)\)", PROTO.read_text()):
        assert req in PROTO_MESSAGES and resp in PROTO_MESSAGES


# ---------------------------------------------------------------- the codec


def test_decode_fills_defaults_like_crictl():
    got = protowire.decode(api.Container, b"")
    assert got == {"id": "", "podSandboxId": "", "imageRef": "", "state": "CONTAINER_CREATED",
                   "createdAt": "0", "labels": {}, "annotations": {}, "imageId": ""}
    assert list(got) == ["id", "podSandboxId", "imageRef", "state", "createdAt", "labels", "annotations",
                         "imageId"]  # proto order; absent sub-messages (metadata, image) are left out


def test_round_trip_of_a_nested_message():
    status = {"id": "c" * 64, "metadata": {"name": "app", "attempt": 1}, "state": "CONTAINER_EXITED",
              "createdAt": "1718000000123456789", "exitCode": -11, "labels": {"b": "2", "a": "1"},
              "mounts": [{"containerPath": "/x", "readonly": True}, {"containerPath": "/y"}],
              "image": {"image": "sha256:" + "a" * 64}, "logPath": "/var/log/pods/ns_p_u/app/1.log"}
    raw = protowire.encode(api.ContainerStatus, status)
    got = protowire.decode(api.ContainerStatus, raw)
    assert got["metadata"] == {"name": "app", "attempt": 1}
    assert got["exitCode"] == -11 and got["createdAt"] == "1718000000123456789"
    assert got["state"] == "CONTAINER_EXITED" and got["startedAt"] == "0"
    assert list(got["labels"].items()) == [("a", "1"), ("b", "2")]  # sorted, as Go prints maps
    assert got["mounts"][1] == {"containerPath": "/y", "hostPath": "", "readonly": False,
                                "selinuxRelabel": False, "propagation": "PROPAGATION_PRIVATE"}
    assert got["image"] == {"image": "sha256:" + "a" * 64, "annotations": {}}


def test_known_bytes():
    # ContainerMetadata{name: "app", attempt: 300}: field 1 len 3 "app", field 2 varint 300 (ac 02)
    assert protowire.encode(api.ContainerMetadata, {"name": "app", "attempt": 300}) == bytes.fromhex(
        "0a03617070" "10ac02")
    # Int64Value{-1}: ten-byte varint
    assert protowire.decode(api.Int64Value, bytes.fromhex("08ffffffffffffffffff01")) == {"value": "-1"}
    # Image.size is uint64: max value stays positive
    assert protowire.decode(api.Image, bytes.fromhex("20ffffffffffffffffff01"))["size"] == str(2**64 - 1)


def test_unknown_fields_and_enum_values_are_tolerated():
    # field 99 (varint), field 98 (fixed64), field 97 (fixed32), field 96 (bytes), then state = 7
    raw = bytes.fromhex("98067b" "91060102030405060708" "8d0601020304" "82060161" "3007")
    got = protowire.decode(api.Container, raw)
    assert got["state"] == 7 and got["id"] == ""


def test_packed_and_unpacked_repeated_varints():
    numbers = protowire.Message("N", protowire.field(1, "n", protowire.INT64, repeated=True))
    assert protowire.decode(numbers, bytes.fromhex("0801" "0802"))["n"] == ["1", "2"]
    assert protowire.decode(numbers, bytes.fromhex("0a020102"))["n"] == ["1", "2"]


@pytest.mark.parametrize("raw, why", [
    ("0a05617070", "past the end"),          # length 5, 3 bytes follow
    ("08ff", "truncated varint"),
    ("0b", "wire type 3"),                   # groups are not proto3
    ("0861", "wire type 0"),                 # id (a string) sent as a varint
    ("0880808080808080808080", "longer than 10"),
])
def test_malformed_input_raises(raw, why):
    with pytest.raises(protowire.WireError, match=why):
        protowire.decode(api.Container, bytes.fromhex(raw))


def test_encode_rejects_unknown_names_and_enum_values():
    with pytest.raises(protowire.WireError, match="no field"):
        protowire.encode(api.ContainerMetadata, {"nam": "x"})
    with pytest.raises(protowire.WireError, match="not a ContainerState"):
        protowire.encode(api.ContainerStateValue, {"state": "RUNNING"})
