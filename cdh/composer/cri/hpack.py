"""HPACK (RFC 7541), the HTTP/2 header compression, as much as a gRPC client needs.

Encoding writes every header as a literal without indexing and without Huffman coding:
always valid, and a request's few headers gain nothing from more. Decoding is complete:
the static and dynamic tables, table size updates, and Huffman-coded strings (gRPC
servers Huffman-code most values, grpc-message included).

The Huffman code is canonical (codes of one length are consecutive, in symbol order), so
the table below is only each symbol's code length, RFC 7541 Appendix B's "len" column
for symbols 0-255 and EOS (256); the codes follow from it.
"""

from __future__ import annotations


class HpackError(ValueError):
    """A header block that does not decode (a connection error in HTTP/2)."""


STATIC_TABLE = (
    (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"),
    (":path", "/index.html"), (":scheme", "http"), (":scheme", "https"), (":status", "200"),
    (":status", "204"), (":status", "206"), (":status", "304"), (":status", "400"),
    (":status", "404"), (":status", "500"), ("accept-charset", ""), ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""), ("accept-ranges", ""), ("accept", ""), ("access-control-allow-origin", ""),
    ("age", ""), ("allow", ""), ("authorization", ""), ("cache-control", ""),
    ("content-disposition", ""), ("content-encoding", ""), ("content-language", ""),
    ("content-length", ""), ("content-location", ""), ("content-range", ""), ("content-type", ""),
    ("cookie", ""), ("date", ""), ("etag", ""), ("expect", ""), ("expires", ""), ("from", ""),
    ("host", ""), ("if-match", ""), ("if-modified-since", ""), ("if-none-match", ""),
    ("if-range", ""), ("if-unmodified-since", ""), ("last-modified", ""), ("link", ""),
    ("location", ""), ("max-forwards", ""), ("proxy-authenticate", ""), ("proxy-authorization", ""),
    ("range", ""), ("referer", ""), ("refresh", ""), ("retry-after", ""), ("server", ""),
    ("set-cookie", ""), ("strict-transport-security", ""), ("transfer-encoding", ""),
    ("user-agent", ""), ("vary", ""), ("via", ""), ("www-authenticate", ""),
)

HUFFMAN_LENGTHS = bytes.fromhex(
    "0d171c1c1c1c1c1c1c181e1c1c1e1c1c1c1c1c1c1c1c1e1c1c1c1c1c1c1c1c1c060a0a0c0d06080b0a0a080b0806"
    "06060505050606060606060607080f060c0a0d06070707070707070707070707070707070707070707070807080d"
    "130d0e060f05060506050606060507070606060506070605050607070707070f0b0e0d1c14161414161616171617"
    "1717171718171818161718171717171516171617171816151416161717151716161815161717151516151716171714"
    "161616171616171a1a1413161716191a1a1a1b1b1a181913151a1b1b1a1b1815151a1a1c1b1b1b14181415161515"
    "171616191918181a171a1b1a1a1b1b1b1b1b1c1b1b1b1b1b1a1e"
)
EOS = 256


def _canonical_decoder(lengths: bytes) -> tuple[dict[int, int], dict[int, int], list[int]]:
    """first code and first position of each length, and the symbols in code order."""
    symbols = sorted(range(len(lengths)), key=lambda s: (lengths[s], s))
    first_code: dict[int, int] = {}
    first_pos: dict[int, int] = {}
    code, prev = -1, lengths[symbols[0]]
    for pos, sym in enumerate(symbols):
        length = lengths[sym]
        code = (code + 1) << (length - prev)
        prev = length
        if length not in first_code:
            first_code[length], first_pos[length] = code, pos
    return first_code, first_pos, symbols


_FIRST_CODE, _FIRST_POS, _SYMBOLS = _canonical_decoder(HUFFMAN_LENGTHS)
_COUNT = {n: sum(1 for x in HUFFMAN_LENGTHS if x == n) for n in _FIRST_CODE}


def huffman_decode(data) -> bytes:
    out = bytearray()
    code = length = 0
    for byte in data:
        for shift in range(7, -1, -1):
            code = code << 1 | (byte >> shift) & 1
            length += 1
            first = _FIRST_CODE.get(length)
            if first is not None and 0 <= code - first < _COUNT[length]:
                sym = _SYMBOLS[_FIRST_POS[length] + code - first]
                if sym == EOS:
                    raise HpackError("Huffman string contains EOS")
                out.append(sym)
                code = length = 0
            elif length > 30:
                raise HpackError("invalid Huffman code")
    # What is left must be padding: fewer than 8 bits, all ones (the start of EOS).
    if length > 7 or code != (1 << length) - 1:
        raise HpackError("invalid Huffman padding")
    return bytes(out)


class Decoder:
    """One per connection: the dynamic table lives as long as the connection."""

    def __init__(self, max_table_size: int = 4096) -> None:
        self.max_allowed = max_table_size  # what we announced (SETTINGS_HEADER_TABLE_SIZE)
        self.max_size = max_table_size
        self.size = 0
        self.table: list[tuple[str, str]] = []  # newest first

    def decode(self, block) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = []
        view = memoryview(block)
        pos = 0
        while pos < len(view):
            b = view[pos]
            if b & 0x80:  # indexed header field
                index, pos = _integer(view, pos, 7)
                headers.append(self._entry(index))
            elif b & 0xC0 == 0x40:  # literal with incremental indexing
                name, value, pos = self._literal(view, pos, 6)
                headers.append((name, value))
                self._add(name, value)
            elif b & 0xE0 == 0x20:  # dynamic table size update
                size, pos = _integer(view, pos, 5)
                if size > self.max_allowed:
                    raise HpackError(f"table size update {size} over {self.max_allowed}")
                self.max_size = size
                self._evict()
            else:  # literal without indexing (0000) or never indexed (0001)
                name, value, pos = self._literal(view, pos, 4)
                headers.append((name, value))
        return headers

    def _entry(self, index: int) -> tuple[str, str]:
        if index == 0:
            raise HpackError("index 0")
        if index <= len(STATIC_TABLE):
            return STATIC_TABLE[index - 1]
        dynamic = index - len(STATIC_TABLE) - 1
        if dynamic >= len(self.table):
            raise HpackError(f"index {index} past the tables")
        return self.table[dynamic]

    def _literal(self, view, pos: int, prefix: int) -> tuple[str, str, int]:
        index, pos = _integer(view, pos, prefix)
        if index:
            name = self._entry(index)[0]
        else:
            name, pos = _string(view, pos)
        value, pos = _string(view, pos)
        return name, value, pos

    def _add(self, name: str, value: str) -> None:
        size = len(name.encode()) + len(value.encode()) + 32
        if size > self.max_size:
            self.table.clear()
            self.size = 0
            return
        self.table.insert(0, (name, value))
        self.size += size
        self._evict()

    def _evict(self) -> None:
        while self.size > self.max_size:
            name, value = self.table.pop()
            self.size -= len(name.encode()) + len(value.encode()) + 32


def _integer(view, pos: int, prefix: int) -> tuple[int, int]:
    limit = (1 << prefix) - 1
    value = view[pos] & limit
    pos += 1
    if value < limit:
        return value, pos
    shift = 0
    while True:
        if pos >= len(view):
            raise HpackError("truncated integer")
        b = view[pos]
        pos += 1
        value += (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift > 28:
            raise HpackError("integer too large")


def _string(view, pos: int) -> tuple[str, int]:
    if pos >= len(view):
        raise HpackError("truncated string")
    huffman = view[pos] & 0x80
    length, pos = _integer(view, pos, 7)
    if pos + length > len(view):
        raise HpackError("string runs past the block")
    raw = view[pos:pos + length]
    data = huffman_decode(raw) if huffman else bytes(raw)
    return data.decode("utf-8", "replace"), pos + length


def encode(headers: list[tuple[str, str]]) -> bytes:
    """Literal header fields without indexing, new names, no Huffman coding."""
    out = bytearray()
    for name, value in headers:
        out.append(0)
        for text in (name.encode(), value.encode()):
            out += _integer_bytes(len(text), 7) + text
    return bytes(out)


def _integer_bytes(value: int, prefix: int) -> bytes:
    limit = (1 << prefix) - 1
    if value < limit:
        return bytes((value,))
    out = bytearray((limit,))
    value -= limit
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
