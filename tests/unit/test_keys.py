"""Reading object keys back (cdh/keys.py): the listing prefixes that narrow a big bucket."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cdh import keys
from cdh.routes import MAX_RECIPIENTS

T = datetime(2024, 6, 10, 6, 13, 20, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("template", "known", "want"), [
    ("", {}, [""]),
    ("cores/", {"node": "n1"}, ["cores/"]),
    ("{node}/{namespace}/", {}, [""]),
    ("{node}/{namespace}/", {"node": "n1"}, ["n1/"]),
    ("{node}/{namespace}/", {"node": "n1", "namespace": "default"}, ["n1/default/"]),
    ("{node}/{namespace}/", {"namespace": "default"}, [""]),          # stops at the unknown node
    ("{node}/{namespace}/", {"node": "n-*"}, [""]),                   # a glob cannot narrow
    ("{node}/{namespace}/", {"node": "a/b"}, [""]),                   # the agent would rewrite it
    ("dumps/{namespace}-{pod}/", {"namespace": "shop", "pod": "cart-1"}, ["dumps/shop-cart-1/"]),
    ("/{node}/", {"node": "n1"}, ["n1/"]),                            # the agent strips a leading /
])
def test_listing_prefixes(template, known, want):
    assert keys.listing_prefixes(template, known) == want


def test_listing_prefixes_enumerate_the_days_since():
    got = keys.listing_prefixes("{node}/{date}/", {"node": "n1"}, since=T - 2 * 86400, now=T)
    assert got == ["n1/2024-06-08/", "n1/2024-06-09/", "n1/2024-06-10/"]
    got = keys.listing_prefixes("{year}/{month}/{day}/{hour}/", {}, since=T - 2 * 3600, now=T)
    assert got == ["2024/06/10/04/", "2024/06/10/05/", "2024/06/10/06/"]


def test_listing_prefixes_fall_back_when_since_spans_too_much():
    got = keys.listing_prefixes("{node}/{date}/", {"node": "n1"}, since=T - 5 * 365 * 86400, now=T)
    assert got == ["n1/"]


def test_metadata_names_as_each_kind_stores_them():
    md = {"namespace": "shop", "top-frame": "main+0x10"}  # a name with '-': not a C# identifier
    stored = keys.stored_metadata("azblob", md)
    assert stored == {"namespace": "shop", "top_frame": "main+0x10"}
    assert keys.stored_metadata("s3", md) == md == keys.stored_metadata("gs", md)
    back = keys.read_metadata("azblob", {"Namespace": "shop", "pod_uid": "y"})
    assert back == {"namespace": "shop", "pod_uid": "y"}  # only cdh's own names are mapped back
    assert keys.read_metadata("s3", {"Pod": "web"}) == {"pod": "web"}


def test_metadata_carries_the_signature_top_frame_and_image():
    info = {"namespace": "shop", "podname": "cart-1", "signature": "1-0123456789abcdef",
            "top_frame": "cart!checkout", "image": "registry.example/shop/cart:2.4"}
    md = keys.metadata(info, "node-7")
    assert (md["signature"], md["top-frame"], md["image"]) == (
        "1-0123456789abcdef", "cart!checkout", "registry.example/shop/cart:2.4")
    assert "signature" not in keys.metadata({"signature": None}, "n")  # unknown: left out


def test_metadata_stays_printable_and_within_s3s_2_kb_whatever_the_crash_and_route():
    hostile = "\x1b[31m" + "é" * 400 + "\n\x00"
    info = {k: hostile for k in ("namespace", "podname", "container", "exe", "uuid", "image", "top_frame")}
    info.update(signal=11, timestamp=1700000000, signature="1-0123456789abcdef")
    md = keys.metadata(info, hostile)
    assert set(md) == set(keys.METADATA_NAMES)
    assert all(v.isascii() and v.isprintable() for v in md.values())
    # through a route that encrypts: its longest name and the most recipients cdh/routes.py allows
    md |= keys.route_metadata("r" * 63, ["0123456789abcdef"] * MAX_RECIPIENTS)
    assert sum(len(k) + len(v) for k, v in md.items()) <= keys.METADATA_MAX_BYTES


def test_the_signature_may_narrow_the_key_prefix():
    info = {"namespace": "shop", "signature": "1-0123456789abcdef"}
    key = keys.object_key("{signature}/{namespace}/", info, "n1", T, "x.zip")
    assert key == "1-0123456789abcdef/shop/x.zip"
    sig = "1-0123456789abcdef"
    assert keys.listing_prefixes("{signature}/", {"signature": sig}) == [f"{sig}/"]
    assert keys.object_key("{signature}/", {}, "n1", T, "x.zip") == "unknown/x.zip"  # trace off or unsigned
