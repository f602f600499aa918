"""The agent: the node daemon (``cdh agent``) that installs the composer, takes up finished zips,
uploads them, confirms each object and only then deletes the zip.

Importing this package stays cheap: ``cdh install`` uses ``host`` (stdlib only); the asyncio stack
is imported by ``main`` and what it runs. One agent's life (README "Agent"):

``main.run`` → settings and routes checked (``configload``, cdh/routes.py), the log (``log``) →
``Agent.start``: host setup (``host``: the composer on its Python runtime, ``pyruntime``; the
sysctls, cdh/sysctl.py) → a store per destination (``stores``, cdh/store/) → ``telemetry`` (probes,
/metrics, Events, the composer's log) → the buckets checked → triggers (``intake``) and upload
workers → for each zip, ``upload``: held under flock (``localzip``), dump-info read, routed by its
namespace, key and metadata (cdh/keys.py), encrypted for a route with recipients (``staging``),
sent and confirmed by the route's store (cdh/store/: bodies streamed from the file, parts, the
service's checksums), deleted; a failure waits (``retry``) → ``janitor`` keeps CORE_DIR within its
limits → SIGHUP or a config change reloads (``configload``) → SIGTERM: ``Agent.stop``, bounded by
the grace period.

- ``main``        ``Agent``: start → run → stop; signals set flags; workers; the storage re-check
- ``configload``  settings and routes checked at start, loaded again on reload; the mounted files watched
- ``host``        ``cdh install``/``uninstall``: the composer in HOST_DIR, the sysctls and their backups
- ``pyruntime``   the bundled Python runtime in HOST_DIR: copied in, retired, removed when unused
- ``intake``      inotify, the start sweep, interval, schedule → one de-duplicated queue
- ``upload``      one zip: hold, read dump-info, route, key and metadata, the store's upload, delete
- ``staging``     the encrypted copy a route with recipients uploads: within CORE_DIR's limits, removed
  on every path
- ``localzip``    a finished zip held under an exclusive flock while it is uploaded
- ``retry``       per-file backoff with jitter
- ``stores``      a store (cdh/store/) per destination (main, each route's) and the route table, swapped
  together on reload while uploads on the old ones finish
- ``sweep``       ``cdh sweep``: upload now, once
- ``janitor``     the agent's side of the retention guard (cdh/retention.py)
- ``log``         one JSON line per event on stdout; botocore's records routed in; taps
- ``telemetry``   what operators see, through a read-only view of the agent: ``probes`` (the checks),
  ``httpserver`` (/healthz, /readyz, /metrics), ``metrics``, ``k8sevents``, ``composerlog``

Shared with the composer and the tools: cdh/ondisk.py (the files), cdh/keys.py (object keys),
cdh/destination.py and cdh/store/ (where zips go, and how), cdh/routes.py and cdh/agecrypt.py (which
team's zips go where, encrypted to whom), cdh/sysctl.py, cdh/signals.py, cdh/config/.
"""
