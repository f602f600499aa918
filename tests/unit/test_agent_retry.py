"""Retry policy: per-file backoff with jitter (which failures no retry fixes: each store, test_store_*.py)."""

from __future__ import annotations

import random

from cdh.agent import retry


def test_backoff_grows_with_jitter_and_caps():
    b = retry.Backoff(2, 60, rng=random.Random(1))
    delays = [b.delay("f") for _ in range(10)]
    assert all(2 <= d <= 60 for d in delays)
    assert delays[0] <= 2 and delays[-1] >= 30
    assert retry.Backoff(2, 60).delay("g", permanent=True) >= 54
    b.forget("f")
    assert b.delay("f") <= 2
