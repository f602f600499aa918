"""Object keys (cdh/keys.py): the listing layout written and read back, and the listing prefixes that
narrow a big bucket."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
    key = keys.object_key("{signature}/{namespace}/", info, "n1", T, "x.zip", "plain")
    assert key == "1-0123456789abcdef/shop/x.zip"
    sig = "1-0123456789abcdef"
    assert keys.listing_prefixes("{signature}/", {"signature": sig}) == [f"{sig}/"]
    assert keys.object_key("{signature}/", {}, "n1", T, "x.zip", "plain") == "unknown/x.zip"  # trace off


# ---------------------------------------------------------------- the listing layout

UUID = "8d7f2c1e-0b7a-4a53-9d0e-3f1c2b4a5d6e"
INFO = {"namespace": "shop", "podname": "web-7d4b9c-x2x9q", "container": "web", "signal": 11, "exe": "segv",
        "uuid": UUID, "timestamp": 1764650232, "signature": "1-0123456789abcdef",
        "image": "registry.example/shop/web:2.4", "top_frame": "web!handle_request"}


def test_a_listed_key_reads_back_as_what_ls_shows():
    name = f"{UUID}-dump-1764650232-node-a-segv-12-11.zip"
    key = keys.object_key("cores/{node}/", INFO, "node-a", 1764650232, name)
    assert key == ("cores/node-a/2025-12-02/043712~11~1-0123456789abcdef~shop~web-7d4b9c-x2x9q~web~segv~"
                   "node-a~~registry.example!2Fshop!2Fweb!3A2.4~web!21handle_request~"
                   f"{name}")  # the uuid is in the zip's name: not repeated
    assert keys.parse_listed(key) == {
        "signal": "11", "signature": "1-0123456789abcdef", "namespace": "shop", "pod": "web-7d4b9c-x2x9q",
        "container": "web", "exe": "segv", "node": "node-a", "uuid": "",
        "image": "registry.example/shop/web:2.4", "top-frame": "web!handle_request", "time": 1764650232,
        "zip_name": name}
    assert keys.zip_name_of(key) == name
    other = keys.parse_listed(keys.object_key("", {**INFO, "signature": None}, "n", 1764650232, "x.zip"))
    assert other["uuid"] == UUID and other["signature"] == ""


@pytest.mark.parametrize("key", [
    "a.zip", f"{UUID}-dump-1764650232-node-a-segv-12-11.zip", "cores/2025-12-02/a.zip",
    "2025-13-02/043712~~~~~~~~~~~a.zip", "2025-12-02/253712~~~~~~~~~~~a.zip",
    "2025-12-02/043712~~~~~~~~~~a.zip", "2025-12-02/043712~~~~~~~~~~~a/b.zip",
    "x2025-12-02/043712~~~~~~~~~~~a.zip", "2025-12-02/043712~~~~~~~~~~~",
    "2025-12-02/043712~~~~~~~~~~x:y~a.zip",
])
def test_other_keys_are_not_listed_ones(key):
    assert keys.parse_listed("2025-12-02/043712~~~~~~~~~~~a.zip")["zip_name"] == "a.zip"  # 10 empty values
    assert keys.parse_listed(key) is None
    assert keys.zip_name_of(key) == key.rsplit("/", 1)[-1]


@given(st.dictionaries(st.sampled_from(["namespace", "podname", "container", "signal", "exe", "uuid",
                                        "signature", "image", "top_frame"]), st.text(max_size=300)),
       st.text(min_size=1, max_size=300), st.integers(0, 4102444800), st.text(max_size=300))
def test_any_values_make_a_key_within_s3s_limit_that_reads_back(info, node, t, prefix_value):
    name = "dump.zip"
    key = keys.object_key("{namespace}/" + keys.sanitise(prefix_value) + "/", info, node, t, name)
    assert len(key.encode()) <= keys.MAX_KEY_BYTES
    assert len(key.rsplit("/", 1)[-1].encode()) <= keys.MAX_SEGMENT_BYTES  # a file name, on MinIO
    listed = keys.parse_listed(key)
    assert listed is not None and listed["time"] == t and listed["zip_name"] == name
    for field, value in [("node", node), *((f, info.get(f) or "") for f in ("namespace", "container", "exe",
                                                                           "image"))]:
        # exact, or a whole-character start of it where the key had to be cut
        assert value.startswith(listed[field]) and (listed[field] == value or len(listed[field]) < len(value))


@pytest.mark.parametrize("value", ["web", "a/b:c", "std::vector<int>::at(unsigned long)", "ü~€!", "x" * 80])
def test_listed_values_escape_and_read_back(value):
    cell = keys.escape_listed(value)
    assert set(cell) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-!")
    assert len(cell) <= keys.LISTED_VALUE_CHARS
    assert value.startswith(keys.unescape_listed(cell))
    if len(value.encode()) * 3 <= keys.LISTED_VALUE_CHARS:
        assert keys.unescape_listed(cell) == value


def test_start_after_skips_what_is_older_than_since():
    day = "cores/2025-12-02/"
    after = keys.listed_start_after(day, 1764650232)
    assert after == day + "043711~~"
    older = keys.object_key("cores/", INFO, "n", 1764650231, "a.zip")
    same = keys.object_key("cores/", INFO, "n", 1764650232, "a.zip")
    assert older < after < same
    assert keys.listed_start_after(day, 1764633600) is None  # since is the day's start: all of it
    assert keys.listed_start_after("cores/x/", 1764650232) is None


def test_listing_levels_count_the_template_directories_below_a_prefix():
    assert keys.listing_levels("", "") == 0
    assert keys.listing_levels("{node}/{namespace}/", "") == 2
    assert keys.listing_levels("{node}/{namespace}/", "n1/") == 1
    assert keys.listing_levels("cores/{date}/", "cores/2025-12-02/") == 0
