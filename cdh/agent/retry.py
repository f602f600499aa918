"""When each file is tried next.

Each store retries its requests a few times (botocore's standard mode for S3). What is
left here is per file: a file that failed waits ``retry_min_s x 2^(n-1)``,
capped at ``retry_max_s``, with jitter so a node's backlog does not hit the
store in lockstep after an outage. Permanent errors (the bucket, keys or
permissions are wrong: only a config change fixes them; which ones they are is each
store's ``failure()``, cdh/store/) wait the longest.
"""

from __future__ import annotations

import random


class Backoff:
    """Per-file attempt counts and the delay before each file's next try."""

    def __init__(self, min_s: float, max_s: float, rng: random.Random | None = None) -> None:
        self.min_s = min_s
        self.max_s = max_s
        self.attempts: dict[str, int] = {}
        self.rng = rng or random.Random()

    def delay(self, path: str, permanent: bool = False) -> float:
        n = self.attempts[path] = self.attempts.get(path, 0) + 1
        if permanent:
            return self.max_s * self.rng.uniform(0.9, 1.0)
        ceiling = min(self.max_s, self.min_s * 2 ** min(n - 1, 60))
        # "Equal jitter": at least half the step, so retries never collapse to zero delay.
        return max(self.min_s, self.rng.uniform(ceiling / 2, ceiling))

    def forget(self, path: str) -> None:
        self.attempts.pop(path, None)

    def reset(self, min_s: float, max_s: float) -> None:
        """After a reload: new limits, every file starts over."""
        self.min_s, self.max_s = min_s, max_s
        self.attempts.clear()
