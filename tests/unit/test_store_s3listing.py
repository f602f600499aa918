"""cdh/store/s3listing.py reads a ListObjectsV2 page exactly as botocore does (its own parser is the
reference), in botocore's shape, so botocore's handlers (URL-decoding of keys) still apply."""

from __future__ import annotations

import asyncio

import botocore.session
import pytest
from botocore.parsers import RestXMLParser

from cdh.store.s3listing import ParserFactory, parse_page

HEAD = b'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'


def _object(key: bytes, size: int = 1234, when: bytes = b"2026-12-02T04:37:12.000Z") -> bytes:
    return (b"<Contents><Key>" + key + b"</Key><LastModified>" + when + b"</LastModified>"
            b"<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>" + str(size).encode()
            + b"</Size><Owner><ID>x</ID><DisplayName>y</DisplayName></Owner>"
              b"<StorageClass>STANDARD</StorageClass></Contents>")


PAGES = {
    "flat, truncated": HEAD + b"<Name>b</Name><Prefix></Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys>"
    b"<IsTruncated>true</IsTruncated><NextContinuationToken>tok+/=</NextContinuationToken>"
    + _object(b"2026-12-02/043712~11~~shop~web~web~segv~node-a~~a.zip")
    + _object(b"plain &amp; &lt;odd&gt; name.zip", 0, b"2026-12-02T04:37:12Z") + b"</ListBucketResult>",
    "delimited": HEAD + b"<Name>b</Name><Prefix>cores/</Prefix><Delimiter>/</Delimiter><KeyCount>3</KeyCount>"
    b"<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>" + _object(b"cores/a.zip")
    + b"<CommonPrefixes><Prefix>cores/2026-12-01/</Prefix></CommonPrefixes>"
      b"<CommonPrefixes><Prefix>cores/2026-12-02/</Prefix></CommonPrefixes></ListBucketResult>",
    "url-encoded, from a start": HEAD + b"<Name>b</Name><Prefix>d%2F</Prefix>"
    b"<StartAfter>d%2F0437~~</StartAfter><ContinuationToken>abc</ContinuationToken><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys>"
    b"<EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>"
    + _object(b"d%2F043712~11%7E~x+y%C3%A9.zip") + b"</ListBucketResult>",
    "empty": HEAD + b"<Name>b</Name><Prefix>nothing/</Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys>"
    b"<IsTruncated>false</IsTruncated></ListBucketResult>",
}


def _shape(operation: str = "ListObjectsV2"):
    return botocore.session.get_session().get_service_model("s3").operation_model(operation).output_shape


@pytest.mark.parametrize("name", PAGES)
def test_a_page_reads_as_botocore_reads_it(name):
    body = PAGES[name]
    want = RestXMLParser().parse({"body": body, "headers": {}, "status_code": 200}, _shape())
    want.pop("ResponseMetadata")
    for obj in want.get("Contents", []):
        obj.pop("Owner", None)  # not read: the tools never ask for owners
    assert parse_page(body) == want


def test_the_client_parser_takes_this_path_only_for_listings():
    parser = ParserFactory().create_parser("rest-xml")
    body = PAGES["delimited"]
    got = asyncio.run(parser.parse({"body": body, "headers": {"x-amz-request-id": "r1"}, "status_code": 200},
                                   _shape()))
    assert got["CommonPrefixes"] == [{"Prefix": "cores/2026-12-01/"}, {"Prefix": "cores/2026-12-02/"}]
    assert got["ResponseMetadata"]["RequestId"] == "r1"
    got = asyncio.run(parser.parse({"body": b"", "status_code": 200, "headers": {
        "Last-Modified": "Wed, 02 Dec 2026 04:37:12 GMT", "Content-Length": "5"}}, _shape("HeadObject")))
    assert got["ContentLength"] == 5 and got["LastModified"].timestamp() == 1796186232
