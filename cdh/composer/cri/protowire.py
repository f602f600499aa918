"""A small protobuf (proto3) wire codec for the few CRI messages cdh uses.

Messages are described by :class:`Message` tables (cdh/composer/cri/api.py) instead of
generated code, and decode to plain dicts shaped the way crictl prints them (protobuf's
JSON mapping as crictl uses it), so a zip made from gRPC answers reads like one made from
crictl's output:

- keys are the lowerCamelCase JSON names, in field-number order;
- every known scalar field is present, with its default when absent on the wire
  (``""``, ``0``, ``false``, ``[]``, ``{}``); an absent sub-message is left out;
- int64/uint64 are decimal strings, int32/uint32 numbers, enums their names (the number when
  the name is unknown), bytes base64, map keys sorted.

Unknown fields are skipped, so a newer runtime's additions do no harm. Malformed input raises
:class:`WireError` (a ValueError). Encoding takes the same dict shape (enum names or numbers,
int64 as int or string) and leaves out proto3 defaults, as protobuf does.
"""

from __future__ import annotations

STRING, BYTES, BOOL, INT32, UINT32, INT64, UINT64, ENUM, MESSAGE, MAP = range(10)
KIND_NAMES = ("string", "bytes", "bool", "int32", "uint32", "int64", "uint64", "enum", "message", "map")
_VARINT_KINDS = (BOOL, INT32, UINT32, INT64, UINT64, ENUM)
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_MASK64 = (1 << 64) - 1


class WireError(ValueError):
    """The bytes are not a valid encoding of the message."""


class Enum:
    __slots__ = ("by_number", "name", "numbers")

    def __init__(self, name: str, *values: str) -> None:
        """Values are listed in number order from 0 (every CRI enum is dense)."""
        self.name = name
        self.by_number = values
        self.numbers = {v: i for i, v in enumerate(values)}


class Field:
    __slots__ = ("kind", "name", "number", "repeated", "type")

    def __init__(self, number: int, name: str, kind: int, type_=None, repeated: bool = False) -> None:
        self.number = number
        self.name = name          # the JSON (lowerCamelCase) name
        self.kind = kind
        self.type = type_         # the Message of a MESSAGE field, the Enum of an ENUM field
        self.repeated = repeated


class Message:
    __slots__ = ("by_name", "by_number", "fields", "name")

    def __init__(self, name: str, *fields: Field) -> None:
        self.name = name
        self.fields = fields
        self.by_number = {f.number: f for f in fields}
        self.by_name = {f.name: f for f in fields}


def field(number: int, name: str, kind, repeated: bool = False) -> Field:
    """``field(1, "id", STRING)``, ``field(2, "metadata", SomeMessage)``, ``field(3, "state", SomeEnum)``."""
    if isinstance(kind, Message):
        return Field(number, name, MESSAGE, kind, repeated)
    if isinstance(kind, Enum):
        return Field(number, name, ENUM, kind, repeated)
    return Field(number, name, kind, None, repeated)


# ---------------------------------------------------------------- decoding

def decode(message: Message, buf: bytes) -> dict:
    out: dict = {}
    view = memoryview(buf)
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(view, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError(f"{message.name}: field number 0")
        f = message.by_number.get(number)
        if wire == _VARINT:
            value, pos = _varint(view, pos)
        elif wire == _LEN:
            size, pos = _varint(view, pos)
            if pos + size > end:
                raise WireError(f"{message.name}: field {number} runs past the end")
            value, pos = view[pos:pos + size], pos + size
        elif wire == _I64:
            value, pos = view[pos:pos + 8], pos + 8
        elif wire == _I32:
            value, pos = view[pos:pos + 4], pos + 4
        else:
            raise WireError(f"{message.name}: unsupported wire type {wire} (field {number})")
        if pos > end:
            raise WireError(f"{message.name}: truncated")
        if f is not None:
            _store(out, f, wire, value)
    return _with_defaults(message, out)


def _store(out: dict, f: Field, wire: int, value) -> None:
    if f.kind == MAP:
        if wire != _LEN:
            raise WireError(f"map {f.name}: wrong wire type {wire}")
        k, v = _map_entry(value)
        out.setdefault(f.name, {})[k] = v
        return
    if f.repeated and wire == _LEN and f.kind in _VARINT_KINDS:  # packed
        items = out.setdefault(f.name, [])
        pos, view = 0, value
        while pos < len(view):
            raw, pos = _varint(view, pos)
            items.append(_scalar(f, raw))
        return
    expected = _LEN if f.kind in (STRING, BYTES, MESSAGE) else _VARINT
    if wire != expected:
        raise WireError(f"field {f.name}: wire type {wire}, expected {expected}")
    converted = decode(f.type, value) if f.kind == MESSAGE else _scalar(f, value)
    if f.repeated:
        out.setdefault(f.name, []).append(converted)
    else:
        out[f.name] = converted  # proto3: the last one wins (a split sub-message is not merged)


def _scalar(f: Field, raw):
    kind = f.kind
    if kind == STRING:
        return bytes(raw).decode("utf-8", "replace")
    if kind == BYTES:
        import binascii  # no CRI field the composer reads is bytes: not loaded on the node

        return binascii.b2a_base64(raw, newline=False).decode()
    if kind == BOOL:
        return raw != 0
    if kind == INT64:
        return str(raw - (1 << 64) if raw >> 63 else raw)
    if kind == UINT64:
        return str(raw)
    if kind == INT32:
        raw &= 0xFFFFFFFF
        return raw - (1 << 32) if raw >> 31 else raw
    if kind == UINT32:
        return raw & 0xFFFFFFFF
    if kind == ENUM:
        names = f.type.by_number
        return names[raw] if raw < len(names) else raw
    raise WireError(f"field {f.name}: kind {kind} is not a scalar")


def _map_entry(buf) -> tuple[str, str]:
    key = value = ""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        if tag & 7 != _LEN:
            raise WireError("map entry: only string keys and values are supported")
        size, pos = _varint(buf, pos)
        if pos + size > len(buf):
            raise WireError("map entry runs past the end")
        text = bytes(buf[pos:pos + size]).decode("utf-8", "replace")
        pos += size
        if tag >> 3 == 1:
            key = text
        elif tag >> 3 == 2:
            value = text
    return key, value


def _with_defaults(message: Message, found: dict) -> dict:
    out = {}
    for f in message.fields:
        if f.name in found:
            value = found[f.name]
            out[f.name] = dict(sorted(value.items())) if f.kind == MAP else value
        elif f.kind == MAP:
            out[f.name] = {}
        elif f.repeated:
            out[f.name] = []
        elif f.kind != MESSAGE:
            out[f.name] = _default(f)
    return out


def _default(f: Field):
    if f.kind in (STRING, BYTES):
        return ""
    if f.kind == BOOL:
        return False
    if f.kind in (INT64, UINT64):
        return "0"
    if f.kind == ENUM:
        return f.type.by_number[0]
    return 0


def _varint(buf, pos: int) -> tuple[int, int]:
    result = shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise WireError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result & _MASK64, pos
        shift += 7
        if shift >= 70:
            raise WireError("varint longer than 10 bytes")


# ---------------------------------------------------------------- encoding

def encode(message: Message, obj: dict) -> bytes:
    out = bytearray()
    for name, value in obj.items():
        f = message.by_name.get(name)
        if f is None:
            raise WireError(f"{message.name} has no field {name!r}")
        if value is None:
            continue
        if f.kind == MAP:
            for k, v in value.items():
                entry = _len_field(1, str(k).encode()) + _len_field(2, str(v).encode())
                out += _len_field(f.number, entry)
        elif f.repeated:
            for item in value:
                out += _encode_one(f, item, keep_default=True)
        else:
            out += _encode_one(f, value, keep_default=False)
    return bytes(out)


def _encode_one(f: Field, value, keep_default: bool) -> bytes:
    kind = f.kind
    if kind == MESSAGE:
        return _len_field(f.number, encode(f.type, value))  # present, even when empty
    if kind in (STRING, BYTES):
        data = value.encode() if isinstance(value, str) else bytes(value)
        return _len_field(f.number, data) if data or keep_default else b""
    if kind == ENUM and isinstance(value, str):
        if value not in f.type.numbers:
            raise WireError(f"{f.name}: {value!r} is not a {f.type.name}")
        value = f.type.numbers[value]
    number = int(value)
    if number == 0 and not keep_default:
        return b""
    return _varint_bytes(f.number << 3 | _VARINT) + _varint_bytes(number & _MASK64)


def _len_field(number: int, data: bytes) -> bytes:
    return _varint_bytes(number << 3 | _LEN) + _varint_bytes(len(data)) + data


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
