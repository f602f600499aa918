"""What the reliability suite observed, per area, for the summary it prints at the end of the run.

Every number comes from a test's own observations (zips seen, objects checked, faults the proxy
or the test actually injected), never from a constant. ``bytes_lost`` counts the bytes of every
finished zip that did not arrive byte-identical in the bucket, or left the node before its
object was confirmed; it must stay 0.
"""

from __future__ import annotations

# "storage azblob" and "storage gs": the storage faults against Azure Blob Storage and Cloud Storage
# (test_storage.py runs them once per kind; "storage" is S3's line, as it was before those kinds).
# "security": the attacks of tests/reliability/test_hostile_{tools,node,install}.py (AREA = "security"),
# one fault injected per case.
AREAS = ("storage", "storage azblob", "storage gs", "process", "node", "load", "hostile", "secrets",
         "retention", "security")
FIELDS = ("cases", "faults", "captured", "intact", "lost")
TOTALS: dict[str, dict[str, int]] = {area: dict.fromkeys(FIELDS, 0) for area in AREAS}
NOTES: dict[str, list[str]] = {area: [] for area in AREAS}


class Recorder:
    """One area's counters, handed to a test by the ``figures`` fixture."""

    def __init__(self, area: str) -> None:
        assert area in AREAS, area
        self.area = area
        self.totals = TOTALS[area]

    def of(self, kind: str) -> Recorder:
        """This area's figures for a destination kind (s3: the area's own line)."""
        return self if kind == "s3" else Recorder(f"{self.area} {kind}")

    def case(self, n: int = 1) -> None:
        self.totals["cases"] += n

    def faults(self, n: int) -> None:
        self.totals["faults"] += n

    def captured(self, n: int) -> None:
        self.totals["captured"] += n

    def delivered(self, intact: int, lost_bytes: int) -> None:
        self.totals["intact"] += intact
        self.totals["lost"] += lost_bytes

    def note(self, text: str) -> None:
        NOTES[self.area].append(text)


def summary_lines() -> list[str]:
    lines = []
    for area in AREAS:
        t = TOTALS[area]
        if not t["cases"]:
            continue
        lines.append(f"{area:<14} cases {t['cases']:>4}  faults injected {t['faults']:>5}  "
                     f"cores captured {t['captured']:>4}  uploaded intact {t['intact']:>4}  "
                     f"bytes lost {t['lost']}")
        lines += [f"{'':<14} {note}" for note in NOTES[area]]
    return lines
