"""The agent: the node daemon (``cdh agent``) that installs the composer, takes up finished zips,
uploads them, confirms each object and only then deletes the zip.

Importing this package stays cheap: ``cdh install`` uses ``host`` (stdlib only); the asyncio stack
is imported by ``main`` and what it runs. One agent's life (README "Agent"):

``main.run`` → settings checked (``configload``), the log (``log``) → ``Agent.start``: host setup
(``host``: the composer on its Python runtime, ``pyruntime``; the sysctls, cdh/sysctl.py) → the
store (``stores``, cdh/store/) → ``telemetry`` (probes, /metrics, Events, the composer's log) → the
bucket checked → triggers (``intake``) and upload workers → for each zip, ``upload``: held under
flock (``localzip``), dump-info read, key and metadata (cdh/keys.py), sent and confirmed by the
store (cdh/store/: bodies streamed from the file, parts, the service's checksums), deleted; a
failure waits (``retry``) → ``janitor`` keeps CORE_DIR within its limits → SIGHUP or a config
change reloads (``configload``) → SIGTERM: ``Agent.stop``, bounded by the grace period.

- ``main``        ``Agent``: start → run → stop; signals set flags; workers; the storage re-check
- ``configload``  settings checked at start, loaded again on reload; the mounted config file watched
- ``host``        ``cdh install``/``uninstall``: the composer in HOST_DIR, the sysctls and their backups
- ``pyruntime``   the bundled Python runtime in HOST_DIR: copied in, retired, removed when unused
- ``intake``      inotify, the start sweep, interval, schedule → one de-duplicated queue
- ``upload``      one zip: hold, read dump-info, key and metadata, the store's upload, delete
- ``localzip``    a finished zip held under an exclusive flock while it is uploaded
- ``retry``       per-file backoff with jitter
- ``stores``      the store (cdh/store/) of the destination, swapped on reload while uploads on the
  old one finish
- ``sweep``       ``cdh sweep``: upload now, once
- ``janitor``     the agent's side of the retention guard (cdh/retention.py)
- ``log``         one JSON line per event on stdout; botocore's records routed in; taps
- ``telemetry``   what operators see, through a read-only view of the agent: ``probes`` (the checks),
  ``httpserver`` (/healthz, /readyz, /metrics), ``metrics``, ``k8sevents``, ``composerlog``

Shared with the composer and the tools: cdh/ondisk.py (the files), cdh/keys.py (object keys),
cdh/destination.py and cdh/store/ (where zips go, and how), cdh/sysctl.py, cdh/signals.py, cdh/config/.
"""
