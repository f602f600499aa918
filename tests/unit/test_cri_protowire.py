"""The protobuf codec (cdh/composer/cri/protowire.py) on hand-made bytes and round trips."""

from __future__ import annotations

import pytest

from cdh.composer.cri import api, protowire


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
