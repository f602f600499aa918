"""HPACK: RFC 7541's own examples, and every header block the reference encoder (the `hpack`
package, test-only) can make from random headers decodes back to the same headers."""

from __future__ import annotations

import hpack as reference
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdh.composer.cri import hpack

# RFC 7541 Appendix C.4: requests with Huffman coding, one connection.
C4 = [
    ("828684418cf1e3c2e5f23a6ba0ab90f4ff",
     [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")]),
    ("828684be5886a8eb10649cbf",
     [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com"),
      ("cache-control", "no-cache")]),
    ("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
     [(":method", "GET"), (":scheme", "https"), (":path", "/index.html"), (":authority", "www.example.com"),
      ("custom-key", "custom-value")]),
]
# Appendix C.6: responses with Huffman coding and a 256-byte table, so entries are evicted.
C6 = [
    ("488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9"
     "ae82ae43d3",
     [(":status", "302"), ("cache-control", "private"), ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
      ("location", "https://www.example.com")]),
    ("4883640effc1c0bf",
     [(":status", "307"), ("cache-control", "private"), ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
      ("location", "https://www.example.com")]),
    ("88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b"
     "3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007",
     [(":status", "200"), ("cache-control", "private"), ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
      ("location", "https://www.example.com"), ("content-encoding", "gzip"),
      ("set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1")]),
]


def test_rfc7541_requests_with_huffman():
    decoder = hpack.Decoder()
    for block, headers in C4:
        assert decoder.decode(bytes.fromhex(block)) == headers


def test_rfc7541_responses_with_eviction():
    decoder = hpack.Decoder(max_table_size=256)
    for block, headers in C6:
        assert decoder.decode(bytes.fromhex(block)) == headers
    # After C.6.3 the table holds exactly these three (RFC: size 215).
    assert decoder.table[0][0] == "set-cookie" and len(decoder.table) == 3 and decoder.size == 215


def test_huffman_code_is_complete():
    # A complete prefix code over 257 symbols: the Kraft sum is exactly 1.
    assert len(hpack.HUFFMAN_LENGTHS) == 257
    assert sum(2 ** (30 - n) for n in hpack.HUFFMAN_LENGTHS) == 2 ** 30


header_text = st.text(st.characters(min_codepoint=1, max_codepoint=0x10FFFF, blacklist_categories=("Cs",)),
                      max_size=80)


@settings(max_examples=300, deadline=None)
@given(blocks=st.lists(st.lists(st.tuples(st.sampled_from(["grpc-status", "grpc-message", "content-type",
                                                               ":status", "x-custom", "date"]), header_text),
                                min_size=1, max_size=6), min_size=1, max_size=6),
       huffman=st.booleans(), table_size=st.sampled_from([0, 64, 256, 4096]))
def test_decodes_what_the_reference_encoder_makes(blocks, huffman, table_size):
    encoder, decoder = reference.Encoder(), hpack.Decoder()
    encoder.header_table_size = table_size  # emits a table size update in the next block
    for headers in blocks:
        assert decoder.decode(encoder.encode(headers, huffman=huffman)) == headers


@settings(max_examples=100, deadline=None)
@given(headers=st.lists(st.tuples(st.text(min_size=1, max_size=300), header_text), max_size=8))
def test_the_reference_decodes_what_we_encode(headers):
    assert reference.Decoder().decode(hpack.encode(headers)) == headers


@pytest.mark.parametrize("block, why", [
    ("80", "index 0"),
    ("be", "past the tables"),               # index 62 with an empty dynamic table
    ("0085ffffffffff", "Huffman"),           # a name of 5 bytes of 1-bits: EOS inside
    ("0081fe", "padding"),                   # 8 bits of padding
    ("3fe21f", "table size update"),         # 4096 + ... over what we allow
    ("000561", "past the block"),
])
def test_malformed_blocks_raise(block, why):
    with pytest.raises(hpack.HpackError, match=why):
        hpack.Decoder().decode(bytes.fromhex(block))
