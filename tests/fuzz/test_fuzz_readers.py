"""Fuzz targets for the dump readers (the zip reader and the ELF core reader), bounded for CI.

- Every input in tests/fuzz/corpus/ (the minimal inputs earlier runs found) is a regression case.
- Four hypothesis properties draw new inputs (tests/fuzz/strategies.py): ``cdh inspect`` on a core and
  on a zip ends with exit code 0 or 1 and never raises; the composer's stack trace of a core raises
  nothing and says why it has no thread when it has none; unpacking (``cdh get``) raises nothing but its
  one-line DumpError and never puts more bytes on disk than the zip declares.

CI runs CDH_FUZZ_EXAMPLES examples per property (default 200, a few seconds each). Longer, locally:
``CDH_FUZZ_EXAMPLES=20000 pytest tests/fuzz``, or ``python -m tests.fuzz.run --minutes 30`` which keeps
going after a finding, groups findings and writes the minimal input of each to the corpus.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from tests.fuzz import strategies, targets

CORPUS = Path(__file__).with_name("corpus")
EXAMPLES = int(os.environ.get("CDH_FUZZ_EXAMPLES", "200"))
# Shrinking a finding runs the target thousands of times: off in CI (the input is printed unshrunk),
# on with CDH_FUZZ_SHRINK=1. One finding per run, the first.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate] + (
    [Phase.shrink] if os.environ.get("CDH_FUZZ_SHRINK") == "1" else [])
BOUNDED = settings(max_examples=EXAMPLES, deadline=None, database=None, phases=PHASES,
                   report_multiple_bugs=False,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                          HealthCheck.filter_too_much])


def _corpus() -> list[Path]:
    return sorted(p for p in CORPUS.iterdir() if p.is_file()) if CORPUS.is_dir() else []


@pytest.mark.parametrize("path", _corpus(), ids=lambda p: p.name)
def test_corpus(path):
    target = path.name.split("-", 2)
    target = "unpack" if target[0] == "unpack" else f"{target[0]}-{target[1]}"
    targets.run(target, path.read_bytes())


@BOUNDED
@given(strategies.cores())
def test_inspect_a_core(data):
    targets.run("inspect-core", data)


@BOUNDED
@given(strategies.zips())
def test_inspect_a_zip(data):
    targets.run("inspect-zip", data)


@BOUNDED
@given(strategies.cores())
def test_the_composers_stack_trace_of_a_core(data):
    targets.run("stack-core", data)


@BOUNDED
@given(strategies.zips())
def test_unpack_a_zip(data):
    targets.run("unpack", data)
