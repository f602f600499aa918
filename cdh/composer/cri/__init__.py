"""Container runtime metadata for the composer: CRI v1 over gRPC first, crictl as the fallback.

- ``sources``: one ``Link`` per crash that asks the runtime's socket (``grpc``), else crictl
  (``crictl``), and fills the same crictl-shaped records either way.
- ``grpc``: the CRI calls and socket discovery; ``h2``: unary gRPC over HTTP/2 on a unix
  socket; ``hpack``: its header codec; ``protowire`` + ``api``: a protobuf codec and the few
  CRI messages used (``cri.proto`` is their source of truth); ``logtail``: the end of a
  container's log file in the CRI log format. Stdlib only (see ``grpc`` for why).

Here, what every runtime call shares whichever way it goes: its errors (one line each for
dump-info's ``metadata_errors``) and its time (:class:`CallBudget`).
"""

from __future__ import annotations

import time

SLACK_S = 0.05  # a caller's budget within this of a full timeout counts as a full timeout


class CriError(Exception):
    """A runtime call gave nothing usable; ``str()`` is one line for metadata_errors."""


class CriNotFound(CriError):
    """The runtime answered: no such container / pod / image."""


class OutOfBudget(CriError):
    """The caller's time budget (not the runtime) ended the call: it may be retried later."""


def call_limits(timeout_s: float, deadline: float, budget: float | None) -> tuple[float, bool, bool]:
    """(seconds one call may take, cut by the caller's ``budget``, cut by the run's ``deadline``).

    A call gets ``timeout_s``, never past ``deadline`` (a time.monotonic() value), and never past
    ``budget`` (seconds the caller's step may still spend) unless that is within SLACK_S of a full
    timeout: the first call of a step bounded by one CRI timeout must be able to mark the runtime
    hung.
    """
    left = deadline - time.monotonic()
    timeout = min(timeout_s, left)
    cut_by_budget = budget is not None and budget < timeout - SLACK_S
    return (budget if cut_by_budget else timeout), cut_by_budget, left < timeout_s


class CallBudget:
    """One source's calls in one composer run: the per-call timeout, the run's deadline, and a
    circuit breaker (after one call times out in full the runtime is hung: later calls are
    skipped, so a dead runtime costs one timeout, not one per call)."""

    def __init__(self, timeout_s: float, deadline: float) -> None:
        self.timeout_s = timeout_s
        self.deadline = deadline
        self.hung = False
        self.deadline_hit = False  # a call was skipped or cut short by the composer's deadline

    def start(self, what: str, budget: float | None) -> tuple[float, bool, bool]:
        """:func:`call_limits` for the call ``what``; raises instead when it must not start."""
        if self.hung:
            raise CriError(f"{what}: skipped, an earlier call timed out")
        timeout, cut_by_budget, by_deadline = call_limits(self.timeout_s, self.deadline, budget)
        if timeout <= 0:
            if cut_by_budget:
                raise OutOfBudget(f"{what}: no time left in this step")
            self.deadline_hit = True
            raise CriError(f"{what}: skipped, the composer's deadline was reached")
        return timeout, cut_by_budget, by_deadline

    def timed_out(self, what: str, limits: tuple[float, bool, bool]) -> CriError:
        """The error for a call that ran out of the time :meth:`start` gave it."""
        timeout, cut_by_budget, by_deadline = limits
        if cut_by_budget:
            return OutOfBudget(f"{what}: no time left in this step")
        self.hung = timeout >= self.timeout_s  # a full timeout: the runtime is hung
        self.deadline_hit = self.deadline_hit or by_deadline
        return CriError(f"{what}: timed out after {timeout:.1f}s")
