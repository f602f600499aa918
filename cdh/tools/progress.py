"""Download progress: a redrawn bar on a terminal, a few plain lines anywhere else (CI logs)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from cdh.tools.fmt import human_size

BAR_WIDTH = 30
REDRAW_S = 0.1
PLAIN_STEPS = 4   # without a terminal: a line at 25 %, 50 %, 75 %, 100 %


class Progress:
    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._started = self._drawn = time.monotonic()
        self._step = 0
        if not self.tty:
            self._line(f"downloading {label} ({human_size(total)})")

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.tty and now - self._drawn >= REDRAW_S:
            self._drawn = now
            self._draw(now)
        elif not self.tty and self.total:
            step = self.done * PLAIN_STEPS // self.total
            if step > self._step and self.done < self.total:
                self._step = step
                self._line(f"  {100 * self.done // self.total}% ({human_size(self.done)})")

    def finish(self) -> None:
        now = time.monotonic()
        if self.tty:
            self._draw(now)
            self.stream.write("\n")
        elapsed = max(now - self._started, 1e-6)
        self._line(f"downloaded {human_size(self.done)} in {elapsed:.1f} s "
                   f"({human_size(int(self.done / elapsed))}/s)")

    def _draw(self, now: float) -> None:
        frac = self.done / self.total if self.total else 1.0
        filled = int(frac * BAR_WIDTH)
        rate = self.done / max(now - self._started, 1e-6)
        label = self.label if len(self.label) <= 40 else "…" + self.label[-39:]
        self.stream.write(f"\r{label} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
                          f"{100 * frac:5.1f}% {human_size(self.done)} {human_size(int(rate))}/s ")
        self.stream.flush()

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()
