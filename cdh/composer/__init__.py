"""The composer: run by the kernel on the host for every crash, while the dying process waits.

Stdlib plus two optional compiled helpers (isal, zstandard); it never imports the agent's stack
(tests/unit/test_imports.py, tests/packaging check it). One crash, in order (README "Composer"):

kernel pipes the core into ``HOST_DIR/cdc`` (cdh/cli.py) → ``main`` (one catch-all, settings from
composer.env, the log) → ``run.Run.execute``: /proc facts (``proc``) → the pod first, only when a
selector or the name needs it (``podmeta`` through ``cri/``) → ``ratelimit`` → the process's code
files and memory opened (``stacktrace``) → the name (``naming``) → ``.<name>.zip.part`` under flock
(``output``) → the core streamed from stdin (``capture`` into ``zipstream``, on ``blocks``' threads
with ``compress``' codecs, within ``space``' limits; ``stacktrace`` taps it) → what the stream
lacked read from the process's memory → stdin closed: the process is released → the stack trace
and signature (``stacktrace``, cdh/stack/) → pod, container, image and logs (``podmeta``, ``cri/``)
→ the small entries and dump-info (``dumpinfo``) → fsync, rename to ``<name>.zip`` (``output``) →
the event file → ``compose.done`` in the log (``log``).

- ``main``      entry point: catch-all, settings (composer.env, environment, ``-d``), exit codes
- ``run``       one crash's steps, in order, with its context (``Run``)
- ``kernel``    the core_pattern specifiers as ``-X=value`` arguments
- ``proc``      /proc/<pid> facts through one directory handle; cgroup → container id
- ``ratelimit`` ``CDH_RATE_LIMIT``: cores per container in a sliding window
- ``naming``    the zip's name from ``CDH_FILENAME_TEMPLATE``, nothing that escapes CORE_DIR
- ``output``    the part file (flock, publish by rename) and the event file, written atomically
- ``capture``   stdin into the core entry: the pipe enlarged, the deadline polled
- ``zipstream`` the streaming zip writer (Zip64, an entry cut short on a write error)
- ``blocks``    the core's blocks compressed on worker threads, written in order
- ``compress``  the codecs: ISA-L or zlib deflate, zstd
- ``space``     the composer's side of the retention guard (cdh/retention.py)
- ``stacktrace`` the stack trace's steps: what is done while the process is held, and after (cdh/stack/)
- ``podmeta``   pod, container and image facts (``PodMeta``), asked through ``cri/``
- ``cri/``      the container runtime: its CRI socket over gRPC, else crictl (see its __init__)
- ``dumpinfo``  dump-info, the zip's other small entries, the event record (IBM's shapes)
- ``log``       HOST_DIR/composer.log: JSON lines, rotated

The names of every file and entry it writes are cdh/ondisk.py's; its settings, cdh/config/.
"""
