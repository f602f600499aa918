"""Running crictl: found only where configured, each call bounded in time and output.

Under the kernel there is no PATH, so crictl is looked up in
``CDH_CRICTL_PATH`` only, and run only when root owns it and no one else could have
written it or its directories (cdh/fsutil.py's ``untrusted_executable``, sudo's
secure-path rule): it runs as root in the host's namespaces. A refused candidate is
skipped and said in the run's metadata errors. Every call has its own timeout and never outlives
the composer's deadline (cdh.composer.cri.CallBudget, as for the CRI socket);
stdout is capped and the call is killed when it prints more. Warnings on stderr
are normal (crictl warns about default endpoints on every call): only the exit
code and parseable output decide.

Processes are started with ``posix_spawn`` in their own process group (so a
timeout kills the whole group) with stdin on /dev/null: a child must never
hold the core pipe, or the kernel would keep the dying process.
"""

from __future__ import annotations

import os
import re
import select
import signal
import time
from json import loads as _loads  # not orjson: its imports cost more than it saves here

from cdh import fsutil, ondisk
from cdh.composer.cri import CallBudget, CriError, CriNotFound

MAX_JSON_BYTES = 4 << 20  # inspect output is ~100 KiB; parsed JSON takes ~10x its size
READ_CHUNK = 65536
STDERR_KEEP = 4096
CHILD_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/"}
_LOGFMT_MSG = re.compile(r'msg="((?:[^"\\]|\\.)*)"')


def find_crictl(places: tuple[str, ...], refused: list[str] | None = None) -> str | None:
    """The first ``crictl`` in ``places`` (directories, or files named directly) that root may run;
    why each one found but not trusted was skipped is appended to ``refused``."""
    for place in places:
        candidate = place if not os.path.isdir(place) else os.path.join(place, "crictl")
        if not os.path.isfile(candidate):
            continue
        why = fsutil.untrusted_executable(candidate)
        if why is None:
            return candidate
        if refused is not None:
            refused.append(f"crictl not run: {why}")
    return None


class Crictl:
    """One composer run's view of crictl: fixed flags and its calls' time (:class:`CallBudget`)."""

    def __init__(self, exe: str | None, host_dir: str, endpoint: str, timeout_s: float,
                 deadline: float) -> None:
        self.exe = exe
        self.call_budget = CallBudget(timeout_s, deadline)
        self.calls = 0
        self.flags: list[str] = []
        config = ondisk.HostDir(host_dir).crictl_config
        if os.path.isfile(config):
            self.flags += ["-c", config]
        if endpoint:
            self.flags += ["-r", endpoint]

    def json(self, *args: str, budget: float | None = None):
        out = self.run(*args, max_bytes=MAX_JSON_BYTES, budget=budget)
        text = out.strip()
        if not text:
            raise CriNotFound(f"crictl {args[0]}: nothing found")
        try:
            data = _loads(text)
        except ValueError:
            raise CriError(f"crictl {args[0]}: output is not JSON") from None
        if isinstance(data, list):  # crictl >= 1.31 prints an array for several ids
            data = data[0] if data else None
        if not isinstance(data, dict):
            raise CriError(f"crictl {args[0]}: unexpected JSON")
        return data

    def run(self, *args: str, max_bytes: int, keep_tail: bool = False, merge_stderr: bool = False,
            budget: float | None = None) -> bytes:
        """stdout of ``crictl FLAGS ARGS``; CriError when it fails, hangs or floods.

        ``keep_tail``: past ``max_bytes`` keep the last bytes instead of failing (logs).
        """
        if self.exe is None:
            raise CriError("crictl not found (looked in CDH_CRICTL_PATH)")
        what = f"crictl {args[0]}"
        limits = self.call_budget.start(what, budget)
        self.calls += 1
        status, out, err, why = _spawn_and_collect([self.exe, *self.flags, *args], limits[0], max_bytes,
                                                   keep_tail, merge_stderr)
        if why == "timeout":
            raise self.call_budget.timed_out(what, limits)
        if why == "overflow":
            raise CriError(f"crictl {args[0]}: output over {max_bytes} bytes, dropped")
        if why:
            raise CriError(f"crictl {args[0]}: {why}")
        if status != 0:
            message = _last_message(err if not merge_stderr else out)
            cls = CriNotFound if _looks_not_found(message) else CriError
            raise cls(f"crictl {args[0]}: exit {status}: {message}")
        return out


def _spawn_and_collect(argv: list[str], timeout: float, max_bytes: int, keep_tail: bool,
                       merge_stderr: bool) -> tuple[int | None, bytes, bytes, str | None]:
    r_out, w_out = os.pipe()
    r_err, w_err = os.pipe()
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        pid = os.posix_spawn(argv[0], argv, CHILD_ENV, setpgroup=0, file_actions=[
            (os.POSIX_SPAWN_DUP2, devnull, 0),
            (os.POSIX_SPAWN_DUP2, w_out, 1),
            (os.POSIX_SPAWN_DUP2, w_out if merge_stderr else w_err, 2),
        ])
    except OSError as err:
        for fd in (r_out, w_out, r_err, w_err):
            os.close(fd)
        return None, b"", b"", f"cannot start ({err.strerror})"
    finally:
        os.close(devnull)
    os.close(w_out)
    os.close(w_err)
    end = time.monotonic() + timeout
    out, err, why = _collect(r_out, r_err, end, max_bytes, keep_tail)
    if why is not None:
        _kill(pid)
    status = _reap(pid, end if why is None else time.monotonic() + 1.0)
    if status is None:
        _kill(pid)
        status = _reap(pid, time.monotonic() + 1.0)
        why = why or "timeout"
    return status, out, err, why


def _collect(r_out: int, r_err: int, end: float, max_bytes: int,
             keep_tail: bool) -> tuple[bytes, bytes, str | None]:
    out, err = bytearray(), bytearray()
    poller = select.poll()
    open_fds = {r_out: out, r_err: err}
    for fd in open_fds:
        poller.register(fd, select.POLLIN)
    why = None
    try:
        while open_fds:
            left = end - time.monotonic()
            if left <= 0:
                why = "timeout"
                break
            for fd, _ in poller.poll(max(1, int(left * 1000))):
                chunk = os.read(fd, READ_CHUNK)
                if not chunk:
                    poller.unregister(fd)
                    del open_fds[fd]
                    continue
                buf = open_fds[fd]
                buf += chunk
                if fd == r_err and len(buf) > STDERR_KEEP:
                    del buf[:-STDERR_KEEP]
                elif fd == r_out and len(buf) > max_bytes:
                    if not keep_tail:
                        why = "overflow"
                        return b"", bytes(err), why
                    if len(buf) > 2 * max_bytes:
                        del buf[:-max_bytes]
    finally:
        os.close(r_out)
        os.close(r_err)
    if keep_tail and len(out) > max_bytes:
        del out[:-max_bytes]
    return bytes(out), bytes(err), why


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def _reap(pid: int, end: float) -> int | None:
    """The exit status, or None when the process is still running at ``end``."""
    delay = 0.001
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return -1
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() >= end:
            return None
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _last_message(stderr: bytes) -> str:
    """The last meaningful stderr line, without logfmt noise, at most 300 characters."""
    lines = [ln for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    if not lines:
        return "no message"
    line = lines[-1]
    m = _LOGFMT_MSG.search(line)
    return (m.group(1) if m else line.strip())[:300]


def _looks_not_found(message: str) -> bool:
    low = message.lower()
    return "notfound" in low or "not found" in low or "could not find" in low or "no such" in low
