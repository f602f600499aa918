"""Run one command the way the kernel runs the composer: the core arrives on a pipe.

Every tool, ours and the peers, gets the same treatment, so the numbers compare:

- stdin is a fresh pipe; a feeder thread splices the cached core into it
  (zero-copy from the page cache, GIL released), as the kernel writes a core
  into the helper's pipe. The pipe starts at the kernel's default size; a tool
  may enlarge it (ours does, F_SETPIPE_SZ).
- the output is a fresh file in an empty directory on the same disk;
  when the tool has exited its output is fsync'd (our composer fsyncs itself
  before it renames; for it the extra fsync finds nothing left to do), and the
  wall time runs from spawn to the end of that fsync.
- CPU and peak RSS are the child's own (``wait4`` rusage, taken by runner.c,
  a small C parent: a child of Python would inherit Python's peak RSS). The
  feeder and this harness are not counted.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path


class Sample:
    """One run: wall seconds, child CPU seconds, child peak RSS (bytes), output size."""

    def __init__(self, wall_s: float, cpu_s: float, rss: int, out_bytes: int, rc: int) -> None:
        self.wall_s = wall_s
        self.cpu_s = cpu_s
        self.rss = rss
        self.out_bytes = out_bytes
        self.rc = rc

    def as_dict(self) -> dict:
        return {"wall_s": round(self.wall_s, 4), "cpu_s": round(self.cpu_s, 4), "rss": self.rss,
                "out_bytes": self.out_bytes, "rc": self.rc}


def median(samples: list[Sample], attr: str) -> float:
    return statistics.median(getattr(s, attr) for s in samples)


def _feed(src: Path, pipe_w: int, errors: list) -> None:
    """Splice ``src`` into the pipe until EOF, then close it (EPIPE: the reader quit early)."""
    try:
        with open(src, "rb") as f:
            fd = f.fileno()
            while os.splice(fd, pipe_w, 1 << 20):
                pass
    except BrokenPipeError:
        pass
    except OSError as err:
        errors.append(err)
    finally:
        os.close(pipe_w)


def run_piped(runner: Path, argv: list[str], src: Path, out_dir: Path, stdout_name: str | None = None,
              env: dict | None = None) -> Sample:
    """Run ``argv`` with ``src`` on a pipe as stdin; its output lands in ``out_dir`` (emptied first).

    ``stdout_name``: the tool writes to stdout, redirected to this file in ``out_dir``.
    Otherwise the tool writes its own file(s) into ``out_dir``.
    """
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    os.sync()  # start clean: nobody's dirty pages are flushed inside our timing
    pipe_r, pipe_w = os.pipe2(os.O_CLOEXEC)
    stdout = open(out_dir / stdout_name, "wb") if stdout_name else subprocess.DEVNULL  # noqa: SIM115
    errors: list = []
    feeder = threading.Thread(target=_feed, args=(src, pipe_w, errors), daemon=True)
    try:
        child = Child(runner, argv, env=env, cwd=out_dir, stdin=pipe_r, stdout=stdout)
    finally:
        os.close(pipe_r)
    feeder.start()
    child.wait()
    if stdout_name:
        stdout.close()
    out_bytes = _fsync_tree(out_dir)
    wall = time.monotonic() - child.started
    feeder.join()
    if errors:
        raise errors[0]
    return Sample(wall, child.cpu_s, child.rss, out_bytes, child.rc)


def run(runner: Path, argv: list[str], env: dict | None = None, cwd: Path | None = None) -> Sample:
    """Run ``argv`` to completion (stdin /dev/null): wall time, its own CPU and peak RSS."""
    child = Child(runner, argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    child.wait()
    return Sample(time.monotonic() - child.started, child.cpu_s, child.rss, 0, child.rc)


class Child:
    """``argv`` run under runner.c, which reports the child's own rusage on a pipe."""

    def __init__(self, runner: Path, argv: list[str], env, cwd, stdin, stdout) -> None:
        self.argv = argv
        report_r, report_w = os.pipe2(os.O_CLOEXEC)
        self._report = report_r
        self.started = time.monotonic()
        try:
            self.proc = subprocess.Popen([str(runner), str(report_w), *argv], stdin=stdin, stdout=stdout,
                                         stderr=subprocess.PIPE, cwd=cwd, env=env, pass_fds=(report_w,))
        finally:
            os.close(report_w)
        self.rc = self.cpu_s = self.rss = 0

    def wait(self) -> None:
        """Wait for the exit; raises unless it exited 0."""
        stderr = self.proc.stderr.read()
        self.rc = self.proc.wait()
        with os.fdopen(self._report, "r") as f:
            report = f.read().split()
        if self.rc != 0 or len(report) != 4:
            raise RuntimeError(f"{' '.join(self.argv[:3])} exited {self.rc}: "
                               f"{stderr.decode(errors='replace')[-800:]}")
        self.cpu_s = float(report[1]) + float(report[2])
        self.rss = int(report[3]) * 1024


def _fsync_tree(d: Path) -> int:
    """fsync every file under ``d`` and ``d`` itself; their total size."""
    total = 0
    for path in sorted(d.rglob("*")):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                total += os.fstat(fd).st_size
            finally:
                os.close(fd)
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return total
