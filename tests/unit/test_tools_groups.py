"""``cdh ls --group`` over dumps read from the listing alone: the key (cdh/keys.py's listing layout)
carries the signature, the image and the top frame, so a storm groups without one HEAD."""

from __future__ import annotations

from cdh import keys
from cdh.store import ObjectInfo
from cdh.tools.bucket import from_listed
from cdh.tools.groups import few, group


def listed(n: int, t: int, signature: str | None, namespace: str = "shop", image: str = "reg/cart:2.4",
           top_frame: str = "cart!apply_coupon"):
    """Dump ``n`` as ``cdh ls`` reads it from a listing: the key the agent wrote, nothing else."""
    info = {"namespace": namespace, "podname": f"cart-{n}", "container": "cart", "signal": 11, "exe": "cart",
            "signature": signature, "image": image, "top_frame": top_frame}
    key = keys.object_key("", info, f"node-{n % 3}", t, f"{n}.zip")
    return from_listed(ObjectInfo(key=key, size=1, last_modified=t), keys.parse_listed(key))


def test_a_storm_groups_from_its_keys_the_newest_giving_the_top_frame():
    t = 1764650232
    storm = [listed(i, t + i, "1-aaaa") for i in range(400)]
    storm += [listed(400 + i, t - 100 + i, "1-aaaa", namespace="shop-canary", image="reg/cart:2.5-rc1",
                     top_frame="cart!apply_coupon_v0") for i in range(10)]
    rare = [listed(999, t - 5000, "1-bbbb", namespace="pay", image="reg/ledger:7",
                   top_frame="ledger::post()")]
    unsigned = [listed(998, t - 6000, None, top_frame="")]
    big, small, none = group(storm + rare + unsigned)
    assert (big.signature, big.count, big.top_frame) == ("1-aaaa", 410, "cart!apply_coupon")
    assert (big.first, big.last) == (t - 100, t + 399) and big.nodes == {"node-0", "node-1", "node-2"}
    assert big.images == {"reg/cart:2.4", "reg/cart:2.5-rc1"} and big.namespaces == {"shop", "shop-canary"}
    assert (small.top_frame, small.images) == ("ledger::post()", {"reg/ledger:7"})  # exact, not sanitised
    assert (none.signature, none.top_frame) == (None, None)
    assert few(big.images, 1) == "reg/cart:2.4 +1"
