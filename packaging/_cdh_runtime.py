"""cdh's entry under a runtime laid out by packaging/pyruntime.py (copied into its site-packages).

The zipapp's ``__main__`` calls ``run()`` when this module is importable. Only ``os`` (loaded by
then) at module level: this runs before every composer.
"""

import os

# runtime/<id>/site-packages/_cdh_runtime.py → runtime/<id>
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCK = os.path.join(ROOT, "lock")

_held = None  # the lock's fd, open for the life of the process


def run():
    hold()
    from cdh.cli import run

    run()


def hold():
    """Hold a shared lock on this runtime for the life of the process.

    The installer removes a retired runtime only when it can lock it exclusively, so a composer
    that is still running keeps its interpreter, libraries and modules. Never blocks, never fails
    the run: a missing lock file only loses that protection.
    """
    global _held
    try:
        import fcntl

        fd = os.open(LOCK, os.O_RDONLY | os.O_CLOEXEC)
    except (ImportError, OSError):
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)  # being removed right now: run on what is already loaded
        return
    _held = fd
