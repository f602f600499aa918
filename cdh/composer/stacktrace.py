"""The composer's side of the stack trace (cdh/stack/): what is done while the process is held,
and what waits until it is released.

While held, only what cannot be had later, each step costing microseconds (README "Stack traces
and signatures" has the figures): after the rate limit and the pod selector have let the crash
through, open the process's executable mappings (``/proc/<pid>/map_files``, ESRCH once it is
released) and ``/proc/<pid>/mem``; tap the core as it streams into the zip (its head and a
window of each thread's stack); when the stream ends, read from ``mem`` what it lacked. Nothing
here may fail the capture: every error becomes a line in dump-info's ``stack.errors``.

After release, and before the container runtime is asked anything: unwind, name the functions
and sign, within ``CDH_STACK_BUDGET`` and the run's deadline (cdh/stack/trace.py, imported only
then), and close the fds.
"""

from __future__ import annotations

import os

from cdh.stack.codefiles import close_code_files, open_code_files
from cdh.stack.tap import StackTap

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cdh.stack.trace import Trace


class StackCapture:
    """One crash's stack trace, from the hold to the signature. ``tap`` sees every core block."""

    def __init__(self) -> None:
        self.tap = StackTap()
        self.code_files: list = []
        self.mem_fd: int | None = None
        self.errors: list[str] = []

    @classmethod
    def hold(cls, proc_dfd: int | None, maps: bytes | None) -> StackCapture:
        """Open what only the held process gives: its code files and its memory."""
        capture = cls()
        if proc_dfd is None:
            capture.errors.append("no /proc/<pid> of the crashed process: no code files, no memory")
            return capture
        capture.code_files, capture.errors = open_code_files(proc_dfd, maps or b"")
        try:
            capture.mem_fd = os.open("mem", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc_dfd)
        except OSError as err:
            capture.errors.append(f"cannot open /proc/<pid>/mem: {err.strerror}")
        return capture

    def before_release(self) -> None:
        """The stream has ended; the process is still held: read what the stream lacked."""
        if self.mem_fd is not None:
            self.tap.fill_from_memory(self.mem_fd)
            os.close(self.mem_fd)
            self.mem_fd = None

    def after_release(self, budget_s: float) -> Trace:
        """Unwind and sign within ``budget_s`` (CDH_STACK_BUDGET, never past the run's deadline). Bad
        input is in the trace's errors; a bug raises (the caller keeps the core)."""
        try:
            from cdh.stack.trace import stack_trace

            if self.tap.error:
                self.errors.append(self.tap.error)
            return stack_trace(bytes(self.tap.head), self.tap.windows, self.code_files,
                               budget_s=budget_s, errors=self.errors)
        finally:
            self.close()

    def close(self) -> None:
        close_code_files(self.code_files)
        self.code_files = []
        if self.mem_fd is not None:
            os.close(self.mem_fd)
            self.mem_fd = None
        self.tap.windows, self.tap.head = {}, bytearray()   # their memory goes now

