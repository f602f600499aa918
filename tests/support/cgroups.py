"""A kubelet-shaped cgroup for a test process, so the composer finds a container id as on a node.

cgroup v2 (systemd driver's slice names) where it is mounted, else cgroup v1's pids hierarchy
(cgroupfs driver). Needs root: without a writable hierarchy the test is skipped, or fails under
CDH_REQUIRE_KERNEL=1 (tests/support/require.py).
"""

from __future__ import annotations

from pathlib import Path

from tests.support.require import require


def make_container_cgroup(pod: dict, cid: str) -> list[Path]:
    """Create a kubelet-shaped cgroup for ``cid``; the directories made, outermost first."""
    uid = pod["metadata"]["uid"]
    candidates = []
    for root in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
        if (root / "cgroup.procs").exists() and (root / "cgroup.controllers").exists():  # cgroup v2
            slices = ["kubepods.slice", "kubepods-burstable.slice",
                      f"kubepods-burstable-pod{uid.replace('-', '_')}.slice", f"cri-containerd-{cid}.scope"]
            candidates.append((root, slices))
    if (Path("/sys/fs/cgroup/pids") / "cgroup.procs").exists():  # cgroup v1, cgroupfs driver
        candidates.append((Path("/sys/fs/cgroup/pids"), ["kubepods", "burstable", f"pod{uid}", cid]))
    for root, parts in candidates:
        made, path = [], root
        try:
            for part in parts:
                path = path / part
                if not path.exists():
                    path.mkdir()
                    made.append(path)
            return made or [path]
        except OSError:
            remove_cgroups(made)
    require(False, "no writable cgroup hierarchy to put a process in")


def remove_cgroups(made: list[Path]) -> None:
    for path in reversed(made):
        try:
            path.rmdir()
        except OSError:
            pass
