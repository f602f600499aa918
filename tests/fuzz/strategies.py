"""Hypothesis strategies for the dump readers: ELF cores and dump zips, structure-aware.

A purely random byte string never gets past the ELF magic or the zip's end record, so both strategies
build a well-formed input from drawn parts (notes of every type cdh reads, segments, entries of every
role with drawn JSON) and then damage it: header fields set to edge values, bytes overwritten at drawn
offsets. Sizes are kept small (a few KiB) so thousands of examples run per minute.
"""

from __future__ import annotations

import io
import json
import struct
import warnings
import zipfile
import zlib

from hypothesis import strategies as st

from tests.support.hostile import layout, note

NOTE_TYPES = [1, 3, 6, 0x53494749, 0x46494C45, 2, 4, 0x202]   # PRSTATUS PRPSINFO AUXV SIGINFO FILE + others
EDGE_U64 = [0, 1, 0xFF, 0xFFFF, 0xFFFF_FFFF, 1 << 32, 1 << 62, (1 << 64) - 1]
EDGE_U16 = [0, 1, 2, 0xFFFE, 0xFFFF]
EDGE_U32 = [0, 1, 0x7FFF_FFFF, 0xFFFF_FFFF]
ROLES = ["-dump-info.json", "-pod-info.json", "-runtime-info.json", "-ps-info.json", "-0-image-info.json",
         "-0.log", ".core", "-proc/cmdline", "-1.log", "-7-image-info.json"]
NAME = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0-dump-1718000000-web-0-app-1-11"


@st.composite
def note_desc(draw, ntype: int) -> bytes:
    """A desc that is often the right shape for its type, sometimes short, sometimes random."""
    shape = draw(st.sampled_from(["good", "short", "random"]))
    if shape == "random":
        return draw(st.binary(max_size=400))
    if ntype == 1:        # NT_PRSTATUS x86_64: 112 + 27*8 + 8
        size = 336
    elif ntype == 3:      # NT_PRPSINFO
        size = 136
    elif ntype == 0x53494749:
        size = 128
    elif ntype == 6:
        size = 16 * draw(st.integers(0, 6))
    elif ntype == 0x46494C45:
        count = draw(st.sampled_from([0, 1, 2, 3, 0xFFFF_FFFF, 1 << 60]))
        page = draw(st.sampled_from([0, 4096, 1, (1 << 64) - 1]))
        real = min(count, 3)
        table = b"".join(struct.pack("<QQQ", *draw(st.tuples(*[st.sampled_from(EDGE_U64)] * 3)))
                         for _ in range(real))
        names = b"".join(draw(st.binary(max_size=20)).replace(b"\0", b"/") + b"\0" for _ in range(real))
        desc = struct.pack("<QQ", count, page) + table + names
        return desc if shape == "good" else desc[: draw(st.integers(0, len(desc)))]
    else:
        size = draw(st.integers(0, 64))
    desc = draw(st.binary(min_size=size, max_size=size))
    return desc if shape == "good" else desc[: draw(st.integers(0, size))]


@st.composite
def cores(draw) -> bytes:
    """An ELF core (x86_64 or aarch64), then damaged."""
    machine = draw(st.sampled_from([62, 183, 3, 0xFFFF]))
    notes = b""
    for _ in range(draw(st.integers(0, 6))):
        ntype = draw(st.sampled_from(NOTE_TYPES))
        notes += note(draw(st.sampled_from([b"CORE", b"GNU", b"LINUX", b""])), ntype, draw(note_desc(ntype)))
    segs = []
    for _ in range(draw(st.integers(0, 4))):
        vaddr = draw(st.sampled_from([0x400000, 0x7F0000000000, 0, (1 << 64) - 4096]))
        page = draw(st.sampled_from([b"", b"\x7fELF" + bytes(60), bytes(100)]))
        segs.append((vaddr, draw(st.sampled_from([0, 4096, 1 << 40])), page))
    count = 1 + len(segs)
    phdrs, data = layout(notes, segs)
    xnum = draw(st.booleans()) and draw(st.booleans())
    phnum = draw(st.one_of(st.just(count), st.sampled_from(EDGE_U16)))
    shoff = 64 + len(phdrs) + len(data) if xnum else draw(st.sampled_from([0, 64, (1 << 64) - 1]))
    ehdr = b"\x7fELF" + bytes([2, 1, 1]) + b"\0" * 9 + struct.pack(
        "<HHIQQQIHHHHHH", 4, machine, 1, 0, draw(st.sampled_from([64, 0, 1 << 40])), shoff, 0, 64, 56,
        0xFFFF if xnum else phnum, 64 if xnum else 0, 1 if xnum else 0, 0)
    core = ehdr + phdrs + data
    if xnum:
        real_count = draw(st.sampled_from([*EDGE_U32, count]))
        core += struct.pack("<IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, real_count, 0, 0)
    return draw(damaged(core))


@st.composite
def damaged(draw, data: bytes) -> bytes:
    """``data`` with a few bytes overwritten, or cut short (or unchanged)."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(0, 3))):
        if not buf:
            break
        at = draw(st.integers(0, len(buf) - 1))
        patch = draw(st.binary(min_size=1, max_size=8))
        buf[at:at + len(patch)] = patch
    if buf and draw(st.integers(0, 9)) == 0:
        del buf[draw(st.integers(0, len(buf) - 1)):]
    return bytes(buf)


KEYS = st.sampled_from(["timestamp", "signal", "items", "createdAt", "metadata", "status", "repoDigests",
                        "repoTags", "labels", "exe", "image", "image_digest", "container_id", "truncated",
                        "real_pid", "host_pid", "namespace", "podname", "uuid", "core_size", "name"])
def _nested(children):
    return st.lists(children, max_size=4) | st.dictionaries(KEYS | st.text(max_size=8), children, max_size=6)


# A named extend function: hypothesis reads a lambda's source to see that it recurses, and misreads
# one that spans lines (HypothesisDeprecationWarning: "doesn't use it's argument").
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20), _nested,
    max_leaves=12)


# dump-info's stack trace (cdh/stack/trace.py writes it; cdh inspect and ls --group read it back): the
# composer's shapes, each field sometimes of another type, so the reader's type checks are reached.
HEXES = st.sampled_from(["0x0", "0x401000", "0xffffffffffffffff", "0x", "401000", "0xzz", "0x" + "f" * 40])
ODD = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8) | st.lists(
    st.integers(), max_size=2) | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)


def _maybe(good):
    return st.one_of(good, good, good, ODD)


FRAMES = st.fixed_dictionaries({"pc": _maybe(HEXES)}, optional={
    "how": _maybe(st.sampled_from(["first", "cfi", "fp", "scan"])), "module": _maybe(st.text(max_size=20)),
    "offset": _maybe(HEXES), "function": _maybe(st.text(max_size=20)),
    "function_offset": _maybe(st.integers(-1, 1 << 64)), "signal_frame": _maybe(st.booleans())})
THREADS = st.fixed_dictionaries({}, optional={
    "tid": _maybe(st.integers(-1, 1 << 40)), "crashed": _maybe(st.booleans()),
    "stopped": _maybe(st.text(max_size=20)), "frames": _maybe(st.lists(_maybe(FRAMES), max_size=6))})
STACKS = st.fixed_dictionaries({}, optional={
    "version": _maybe(st.integers(0, 3)), "signature_version": _maybe(st.integers(0, 3)),
    "signature_frames": _maybe(st.lists(_maybe(st.text(max_size=20)), max_size=4)),
    "threads": _maybe(st.lists(_maybe(THREADS), max_size=4)), "errors": _maybe(st.lists(ODD, max_size=3)),
    "modules": _maybe(st.dictionaries(st.text(max_size=10), st.text(max_size=10) | st.none(), max_size=3)),
    "seconds": ODD})
DUMP_INFO_WITH_STACK = st.fixed_dictionaries({"stack": _maybe(STACKS)}, optional={
    "signature": _maybe(st.text(max_size=20)), "top_frame": _maybe(st.text(max_size=20)),
    "timestamp": ODD, "signal": ODD, "exe": ODD})


@st.composite
def entry_bytes(draw, role: str) -> bytes:
    if role.endswith(".json"):
        stack = ["stack"] if role == "-dump-info.json" else []
        kind = draw(st.sampled_from(["json", "deep", "raw", *stack]))
        if kind == "json":
            return json.dumps(draw(JSON), allow_nan=True).encode()
        if kind == "stack":
            return json.dumps(draw(DUMP_INFO_WITH_STACK), allow_nan=True).encode()
        if kind == "deep":
            n = draw(st.integers(1, 5000))
            return b"[" * n + b"]" * n
        return draw(st.binary(max_size=200))
    if role == ".core":
        return draw(cores())
    return draw(st.binary(max_size=300))


@st.composite
def zips(draw) -> bytes:
    """A dump zip: entries of drawn roles and methods (stored, deflate, zstd), then damaged: sizes, CRCs
    and methods patched in the headers, central records repeated, bytes overwritten."""
    out = io.BytesIO()
    names = draw(st.lists(st.sampled_from(ROLES), min_size=1, max_size=6))
    zstd_entries = []
    with warnings.catch_warnings(), zipfile.ZipFile(out, "w") as zf:
        warnings.simplefilter("ignore", UserWarning)   # "Duplicate name": repeated roles are wanted
        for role in names:
            data = draw(entry_bytes(role))
            method = draw(st.sampled_from(["stored", "deflate", "zstd"]))
            info = zipfile.ZipInfo(NAME + role, (2024, 1, 1, 0, 0, 0))
            if method == "zstd":
                import zstandard

                zf.writestr(info, zstandard.ZstdCompressor().compress(data), zipfile.ZIP_STORED)
                zstd_entries.append((NAME + role, zlib.crc32(data), len(data)))
            else:
                zf.writestr(info, data, zipfile.ZIP_DEFLATED if method == "deflate" else zipfile.ZIP_STORED)
    raw = bytearray(out.getvalue())
    for name, crc, size in zstd_entries:
        _patch(raw, name, method=93, crc=crc, size=size)
    for _ in range(draw(st.integers(0, 2))):   # header fields to edge values
        name = NAME + draw(st.sampled_from(names))
        field = draw(st.sampled_from(["method", "crc", "size", "csize"]))
        value = draw(st.sampled_from([0, 1, 8, 93, 99, 0xFFFF_FFFF, 12345]))
        _patch(raw, name, **{field: value})
    if draw(st.integers(0, 4)) == 0:
        raw = bytearray(_repeat_central(bytes(raw), draw(st.integers(1, 5))))
    return draw(damaged(bytes(raw)))


def _patch(raw: bytearray, entry: str, method=None, crc=None, size=None, csize=None) -> None:
    """Set fields of ``entry`` in its local header and central record (first match of each)."""
    name = entry.encode()
    fields = ((method, 8, 10, "<H"), (crc, 14, 16, "<I"), (csize, 18, 20, "<I"), (size, 22, 24, "<I"))
    local = _find(raw, b"PK\x03\x04", 30, 26, name)
    central = _find(raw, b"PK\x01\x02", 46, 28, name)
    for value, at_local, at_central, fmt in fields:
        if value is None:
            continue
        if local is not None:
            struct.pack_into(fmt, raw, local + at_local, value if fmt == "<I" else value & 0xFFFF)
        if central is not None:
            struct.pack_into(fmt, raw, central + at_central, value if fmt == "<I" else value & 0xFFFF)


def _find(raw: bytearray, sig: bytes, head: int, len_at: int, name: bytes) -> int | None:
    pos = raw.find(sig)
    while pos >= 0:
        if pos + head <= len(raw):
            n = struct.unpack_from("<H", raw, pos + len_at)[0]
            if raw[pos + head:pos + head + n] == name:
                return pos
        pos = raw.find(sig, pos + 4)
    return None


def _repeat_central(raw: bytes, copies: int) -> bytes:
    eocd = raw.rfind(b"PK\x05\x06")
    if eocd < 0 or eocd + 22 > len(raw):
        return raw
    count, cd_size, cd_offset = struct.unpack_from("<HII", raw, eocd + 10)
    first = raw[cd_offset:cd_offset + cd_size]
    if not first.startswith(b"PK\x01\x02") or len(first) < 46:
        return raw
    n, m, k = struct.unpack_from("<HHH", first, 28)
    record = first[:46 + n + m + k]
    new_dir = first + record * copies
    tail = bytearray(raw[eocd:eocd + 22])
    struct.pack_into("<HHII", tail, 8, count + copies, count + copies, len(new_dir), cd_offset)
    return raw[:cd_offset] + new_dir + bytes(tail)
