"""The agent: the node daemon (``cdh agent``) that installs the composer, takes up finished zips,
uploads them, confirms each object and only then deletes the zip.

Importing this package stays cheap: ``cdh install`` uses ``host`` (stdlib only); the asyncio stack
is imported by ``main`` and what it runs. One agent's life (README "Agent"):

``main.run`` → settings checked (``configload``), the log (``log``) → ``Agent.start``: host setup
(``host``: the composer on its Python runtime, ``pyruntime``; the sysctls, cdh/sysctl.py) → the S3
client (``clients``) → ``telemetry`` (probes, /metrics, Events, the composer's log) → the bucket
checked → triggers (``intake``) and upload workers → for each zip, ``upload``: held under flock
(``localzip``), dump-info read, key and metadata (cdh/keys.py), sent (``body``, ``multipart``,
``parts``), confirmed (``verify``), deleted; a failure waits (``retry``) → ``janitor`` keeps
CORE_DIR within its limits → SIGHUP or a config change reloads (``configload``) → SIGTERM:
``Agent.stop``, bounded by the grace period.

- ``main``        ``Agent``: start → run → stop; signals set flags; workers; the storage re-check
- ``configload``  settings checked at start, loaded again on reload; the mounted config file watched
- ``host``        ``cdh install``/``uninstall``: the composer in HOST_DIR, the sysctls and their backups
- ``pyruntime``   the bundled Python runtime in HOST_DIR: copied in, retired, removed when unused
- ``intake``      inotify, the start sweep, interval, schedule → one de-duplicated queue
- ``upload``      one zip: hold, read dump-info, send, verify, delete; what every request carries
- ``localzip``    a finished zip held under an exclusive flock while it is uploaded
- ``body``        request bodies streamed from the held file (never a part in memory)
- ``multipart``   a multipart upload: parts in flight within the shared slots, aborted on failure
- ``parts``       how a file is cut into parts (S3's limits)
- ``verify``      the object confirmed (size, ETag, CRC32) before the zip is deleted
- ``retry``       per-file backoff with jitter; which failures no retry fixes
- ``clients``     the S3 client (cdh/s3.py), swapped on reload while uploads on the old one finish
- ``sweep``       ``cdh sweep``: upload now, once
- ``janitor``     the agent's side of the retention guard (cdh/retention.py)
- ``log``         one JSON line per event on stdout; botocore's records routed in; taps
- ``telemetry``   what operators see, through a read-only view of the agent: ``probes`` (the checks),
  ``httpserver`` (/healthz, /readyz, /metrics), ``metrics``, ``k8sevents``, ``composerlog``

Shared with the composer and the tools: cdh/ondisk.py (the files), cdh/keys.py (object keys),
cdh/s3.py, cdh/sysctl.py, cdh/signals.py, cdh/config/.
"""
