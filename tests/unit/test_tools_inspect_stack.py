"""``cdh inspect``'s stack trace from a dump-info anyone who can write to the bucket may have made:
what is not of the composer's types is left out, and the rest still renders."""

from __future__ import annotations

import json

import pytest

from cdh.tools.render import _trace
from cdh.tools.summary import _stack

GOOD_FRAME = {"pc": "0x55c0f52594b7", "how": "first", "module": "/usr/bin/cart", "offset": "0x14b7",
              "function": "apply_coupon", "function_offset": 23}
GOOD = {"signature": "1-9e18378b020e987f", "top_frame": "cart!apply_coupon",
        "stack": {"version": "1", "signature_version": "1", "signature_frames": ["cart!apply_coupon"],
                  "threads": [{"tid": 7, "crashed": True, "stopped": "outermost frame",
                               "frames": [GOOD_FRAME]}],
                  "modules": {"/usr/bin/cart": "ab12"}, "errors": [], "seconds": 0.002}}


def render(info: dict) -> str:
    return "\n".join(_trace({"stack": _stack(info), "dump_info": info}, all_threads=True))


def test_the_composers_trace_renders_as_written():
    text = render(GOOD)
    assert "Signature 1-9e18378b020e987f  cart!apply_coupon  (normal form v1)" in text
    assert "#0  0x000055c0f52594b7  apply_coupon+0x17" in text and "cart+0x14b7" in text
    assert _stack(GOOD)["modules"] == {"/usr/bin/cart": "ab12"}


@pytest.mark.parametrize("stack", [
    "not an object", 7, None, [], {"threads": "x"}, {"threads": [1, "a", None, {"frames": "x"}]},
    {"threads": [{"tid": "7", "crashed": "yes", "stopped": 3, "frames": [
        1, {}, {"pc": 5}, {"pc": "0xZZ"}, {"pc": "0x" + "f" * 40}, {"pc": "nan"},
        {"pc": "0x10", "function": 5, "function_offset": "0x1", "module": ["a"], "offset": 3, "how": {}},
        {"pc": "0x10", "function_offset": True, "offset": "0x1g"}]}]},
    {"signature_frames": "abc", "errors": [1, {"a": 1}], "signature_version": "1; rm -rf"},
    {"signature_frames": [1, None, "x!y"], "errors": "boom", "threads": [{"frames": [GOOD_FRAME]}]},
])
def test_any_shape_of_stack_renders_without_raising(stack):
    info = {**GOOD, "stack": stack, "signature": ["not", "text"], "top_frame": 5}
    text = render(info)
    json.dumps(_stack(info))  # what --json prints
    if isinstance(stack, dict):
        assert "Signature none" in text  # a signature that is not text is not shown
    else:
        assert "Stack trace: none in this dump" in text


def test_bad_frames_are_left_out_and_good_ones_kept():
    frames = [{"pc": "0xZZ"}, GOOD_FRAME, {"pc": 5}]
    st = _stack({**GOOD, "stack": {**GOOD["stack"], "threads": [{"tid": 7, "frames": frames}]}})
    assert [f["pc"] for f in st["threads"][0]["frames"]] == ["0x55c0f52594b7"]
