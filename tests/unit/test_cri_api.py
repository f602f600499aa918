"""cri.proto is the source of truth; the Python tables (cdh/composer/cri/api.py, the harness's
tests/support/kubelet_api.py) must say exactly the same, message by message and field by field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cdh.composer.cri import api, protowire
from cdh.composer.cri.protowire import Enum, Message
from tests.support import kubelet_api

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
    enums = {v.name: v for m in (api, kubelet_api) for v in vars(m).values() if isinstance(v, Enum)}
    assert sorted(enums) == sorted(PROTO_ENUMS)
    for name, values in PROTO_ENUMS.items():
        assert list(enumerate(enums[name].by_number)) == [(n, v) for v, n in values]


def test_every_rpc_names_messages_that_exist():
    for req, resp in re.findall(r"rpc \w+\((\w+)\) returns \((\w+)\)", PROTO.read_text()):
        assert req in PROTO_MESSAGES and resp in PROTO_MESSAGES
