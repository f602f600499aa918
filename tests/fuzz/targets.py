"""The fuzz targets: what one input is run through, and what counts as a finding.

- ``inspect``: ``cdh inspect FILE``, with ``--json`` and with ``--threads``, in this process, through the
  command line's entry point (``cdh.cli:main``, the console script): a zip or a bare core. A finding is
  any exception out of it (with ``CDH_DEBUG=1``, so its last resort for an exception no reader turned
  into its one-line error re-raises it), or an exit code other than 0 or 1 (README: exit codes).
- ``stack-core``: what the composer's stack trace does with a core after the release (the tap fed in
  several block sizes, then the unwinder, no code files): a finding is any exception (the composer's
  catch-all would cost the trace) or a trace with neither a thread nor the reason it has none.
- ``unpack``: what ``cdh get`` does with a downloaded zip (``cdh.tools.unpack.unpack``, the one internal
  name used: there is no way to reach it offline through the CLI). A finding is any exception but the
  reader's own one-line error (``DumpError``), or more bytes on disk than the zip declares.

:func:`bucket` names a finding by exception type and the innermost cdh frame, so one bug is one bucket.
"""

from __future__ import annotations

import contextlib
import io
import os
import resource
import shutil
import tempfile
import traceback
import zipfile

SUFFIX = {"inspect-core": ".core", "inspect-zip": ".zip", "stack-core": ".core", "unpack": ".zip"}


class Finding(Exception):
    """Not an exception of cdh's: a property that does not hold (the message says which)."""


HEADROOM = 2 << 30   # address space one input may add: a header asking for 240 GB fails fast


@contextlib.contextmanager
def _bounded_memory():
    """Lower this process's soft RLIMIT_AS to what it uses plus HEADROOM while one input runs."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as f:
        used = next(int(line.split()[1]) << 10 for line in f if line.startswith("VmSize:"))
    limit = used + HEADROOM if hard == resource.RLIM_INFINITY else min(hard, used + HEADROOM)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def run(target: str, data: bytes) -> None:
    """Run one input; raise what cdh raised, or :class:`Finding`."""
    with tempfile.TemporaryDirectory(prefix="cdh-fuzz-") as d, _bounded_memory():
        path = os.path.join(d, "input" + SUFFIX[target])
        with open(path, "wb") as f:
            f.write(data)
        if target == "unpack":
            _unpack(path, os.path.join(d, "out"))
        elif target == "stack-core":
            _stack(data)
        else:
            _inspect(path)


@contextlib.contextmanager
def _debug():
    """CDH_DEBUG=1: cdh inspect's last resort re-raises what a reader let out, so it is a finding."""
    before = os.environ.get("CDH_DEBUG")
    os.environ["CDH_DEBUG"] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ["CDH_DEBUG"]
        else:
            os.environ["CDH_DEBUG"] = before


def _inspect(path: str) -> None:
    from cdh.cli import main

    for extra in ([], ["--json"], ["--threads"]):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), _debug():
            rc = main(["cdh", "inspect", *extra, path])
        if rc not in (0, 1):
            raise Finding(f"exit code {rc}")


def _stack(data: bytes) -> None:
    from cdh.stack.tap import StackTap
    from cdh.stack.trace import stack_trace

    view = memoryview(data)
    for block in (7, 4096, 1 << 20):
        tap = StackTap()
        for at in range(0, len(data), block):
            tap.feed(view[at:at + block])
        trace = stack_trace(bytes(tap.head), tap.windows, [], budget_s=1.0,
                            errors=[tap.error] if tap.error else [])
        if not trace.stack["threads"] and not trace.stack["errors"]:
            raise Finding("no thread and no reason")


def _unpack(path: str, out: str) -> None:
    from cdh.tools.dumpzip import DumpError
    from cdh.tools.unpack import unpack

    os.makedirs(out)
    try:
        with zipfile.ZipFile(path) as zf:
            declared = {i.filename: i.file_size for i in zf.infolist()}
    except Exception:
        declared = {}
    try:
        where = unpack(path, out)
    except DumpError:
        return
    written = sum(os.path.getsize(os.path.join(b, f)) for b, _, fs in os.walk(where) for f in fs)
    if written > sum(declared.values()):
        raise Finding(f"{written} bytes unpacked, the zip declares {sum(declared.values())}")
    shutil.rmtree(out, ignore_errors=True)


def bucket(err: BaseException) -> str:
    """``Type@file:function`` of the innermost frame in cdh (or the test's own for a Finding)."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f"{os.sep}cdh{os.sep}" in f.filename]
    where = f"{os.path.basename(frames[-1].filename)}:{frames[-1].name}" if frames else "-"
    if isinstance(err, Finding):
        where = str(err).split(" ", 1)[-1][:40]
    return f"{type(err).__name__}@{where}"


def outcome(target: str, data: bytes) -> str | None:
    """The bucket of the finding this input triggers, or None."""
    try:
        run(target, data)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:
        return bucket(err)
    return None
