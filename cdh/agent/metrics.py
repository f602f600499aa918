"""Prometheus metrics, served at ``/metrics`` on ``CDH_METRICS_PORT`` from the agent's loop.

Counters follow the log: :meth:`Metrics.tap` is a log tap (cdh/agent/log.py) that
turns the events the agent logs, and the composer lines it relays
(cdh/agent/composerlog.py, marked ``component=composer``), into counts. So a
metric moves exactly when a log line says the thing happened, at any log level.
Gauges (queue depth, pending zips, core_pattern, storage) are set just before
each scrape from the agent's state (cdh/agent/telemetry.py). Upload series carry the
``route`` (a route's name from CDH_ROUTES_FILE, or ``main``) and the destination's ``kind``
(s3, gs, azblob: as the log lines do): routes come from the platform's config, never from a
workload, and a route has one kind, so the series stay as few as the routes (five per route);
the duration histogram is split by kind only.

One private CollectorRegistry: no process or Python collectors from the global
registry, nothing registered twice in tests that build several agents.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import choose_encoder

from cdh import __version__

# Upload times range from a 10 KiB zip on a LAN to a 10 GiB core over a slow link.
UPLOAD_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800)
# Composer error events known today (cdh/composer/): their series exist from the start at 0,
# so increase() sees the first failure. Others still count, under their own event name.
COMPOSER_FAILURES = ("compose.failed", "core.write_failed", "event.failed", "config.invalid",
                     "name.template", "stack.failed", "truncated")
# The composer's stack trace, from compose.done (cdh/composer/run.py): how it went, and its time after
# the release. Never a label per signature: their number grows with every new bug and rebuild, and a
# series per value would stay in Prometheus for good (README "Stack traces and signatures").
STACK_RESULTS = ("signed", "unsigned", "failed", "off")
STACK_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2)
UPLOAD_FAILURES = {"upload.failed": "transient", "upload.denied": "denied", "upload.invalid": "invalid",
                   "upload.no_room": "no_room"}
KINDS = ("s3", "gs", "azblob")  # cdh/destination.py
QUEUE_STATES = ("queued", "uploading", "retry_wait")
EVENT_REASONS = ("CoreDumpCaptured", "CoreDumpUploaded")
EVENT_RESULTS = ("posted", "failed", "dropped")
COMPOSER = "composer"  # the ``component`` of relayed composer lines


class Metrics:
    def __init__(self) -> None:
        # No <name>_created series: they double the series count and no dashboard or alert reads them.
        # (A process-wide switch of prometheus_client; the agent has no other metrics.)
        disable_created_metrics()
        r = self.registry = CollectorRegistry()

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, registry=r)  # exposed as <name>_total

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, doc, labels, registry=r)

        gauge("cdh_build_info", "Always 1; the version as a label.", ("version",)).labels(__version__).set(1)
        # the composer, from its log
        # From compose.done (an info line: CDH_COMPOSER_LOG_LEVEL=warning or error leaves these at 0).
        self.cores_captured = counter("cdh_cores_captured", "Cores the composer wrote into a zip.")
        self.core_bytes = counter("cdh_core_bytes_captured", "Bytes of those cores (uncompressed).")
        self.composer_failures = counter(
            "cdh_composer_failures", "Composer errors by reason: the composer's log event; 'truncated': "
            "a zip finished with part of the core.", ("reason",))
        self.rate_limited = counter("cdh_crashes_rate_limited",
                                    "Crashes the composer skipped by its per-container rate limit.")
        self.skipped = counter("cdh_crashes_skipped", "Crashes skipped: pod not matching CDH_POD_SELECTOR.")
        self.stack_traces = counter(
            "cdh_stack_traces", "Stack traces of captured cores: signed, unsigned (unwound, nothing to "
            "sign), failed (nothing unwound), off (CDH_STACK_TRACE=false).", ("result",))
        self.stack_seconds = Histogram("cdh_stack_trace_seconds", "Time the composer spent on one stack "
                                       "trace after releasing the process.", buckets=STACK_SECONDS_BUCKETS,
                                       registry=r)
        # uploads
        self.uploads_ok = counter("cdh_uploads_succeeded", "Zips confirmed in the bucket (then deleted), by "
                                  "route (main: CDH_DESTINATION) and destination kind.", ("route", "kind"))
        self.uploads_failed = counter(
            "cdh_uploads_failed", "Failed upload attempts: transient (retried with backoff), denied (bucket, "
            "keys or permissions), invalid (not a readable zip; left alone; no route), no_room (no room to "
            "stage an encrypted copy), by route and destination kind.", ("reason", "route", "kind"))
        self.retries = counter("cdh_upload_retries", "Retries scheduled after a failed attempt.")
        self.upload_bytes = counter("cdh_upload_bytes", "Bytes of zips confirmed in the bucket, by route and "
                                    "destination kind.", ("route", "kind"))
        self.zips_dropped = counter("cdh_zips_dropped", "Zips deleted unsent: CDH_ROUTES_FILE's default or "
                                    "unknown is drop.")
        self.upload_seconds = Histogram("cdh_upload_duration_seconds", "Time to upload and verify one zip.",
                                        ("kind",), buckets=UPLOAD_SECONDS_BUCKETS, registry=r)
        self.reloads = counter("cdh_config_reloads", "Config reloads: applied or rejected.", ("result",))
        self.k8s_events = counter("cdh_k8s_events", "Kubernetes Events: posted, failed, or dropped (queue "
                                  "full).", ("reason", "result"))
        # state, set before each scrape
        self.queue_depth = gauge("cdh_queue_depth", "Zips the agent holds: queued, uploading, waiting to "
                                 "retry.", ("state",))
        self.pending_zips = gauge("cdh_pending_zips", "Finished zips in CORE_DIR (not yet uploaded).")
        self.oldest_pending = gauge("cdh_oldest_pending_zip_age_seconds",
                                    "Age of the oldest finished zip in CORE_DIR (0: none).")
        self.core_dir_free = gauge("cdh_core_dir_free_bytes", "Free bytes on CORE_DIR's filesystem.")
        self.core_pattern_ours = gauge("cdh_core_pattern_ours",
                                       "1 when kernel.core_pattern pipes into this agent's composer.")
        self.zips_kept = gauge("cdh_zips_kept", "Zips kept on the node by CDH_ROUTES_FILE (default or "
                               "unknown: keep): not uploaded, not counted as pending.")
        self.storage_ok = gauge("cdh_storage_reachable", "1 when the last bucket check or upload succeeded, "
                                "by route (each with its own bucket and credentials).", ("route",))
        self._zero_series()
        # log event -> handler(event, fields)
        self._by_event: dict[str, Callable[[str, dict], None]] = {
            "compose.done": self._compose_done,
            "compose.rate_limited": lambda event, f: self.rate_limited.inc(),
            "compose.skipped": lambda event, f: self.skipped.inc(),
            "upload.done": self._upload_done,
            "upload.retry_scheduled": lambda event, f: self.retries.inc(),
            "upload.dropped": lambda event, f: self.zips_dropped.inc(),
            "config.reloaded": lambda event, f: self.reloads.labels("applied").inc(),
            "config.rejected": lambda event, f: self.reloads.labels("rejected").inc(),
            "k8s_event.result": self._k8s_event,
            **{event: self._upload_failed for event in UPLOAD_FAILURES},
        }

    def _zero_series(self) -> None:
        for state in QUEUE_STATES:
            self.queue_depth.labels(state)
        for reason in COMPOSER_FAILURES:
            self.composer_failures.labels(reason)
        for result in STACK_RESULTS:
            self.stack_traces.labels(result)
        for result in ("applied", "rejected"):
            self.reloads.labels(result)
        for reason in EVENT_REASONS:
            for result in EVENT_RESULTS:
                self.k8s_events.labels(reason, result)

    def use_routes(self, kinds: dict[str, str]) -> None:
        """The destinations in use (``main`` and the routes' names, each with its kind): their series exist
        from now, at 0; a route removed keeps its counters (they only ever grow) but loses its storage
        gauge."""
        self.storage_ok.clear()
        for name, kind in kinds.items():
            self.uploads_ok.labels(name, kind)
            self.upload_bytes.labels(name, kind)
            self.upload_seconds.labels(kind)
            self.storage_ok.labels(name)
            for reason in UPLOAD_FAILURES.values():
                if reason != "invalid":
                    self.uploads_failed.labels(reason, name, kind)
        self.uploads_failed.labels("invalid", "", "")  # a zip that cannot be read has no route yet

    # ------------------------------------------------------------ from the log

    def tap(self, level: str, event: str, fields: dict) -> None:
        """A log tap: count what the log says happened."""
        from_composer = fields.get("component") == COMPOSER
        if from_composer and level == "error":
            self.composer_failures.labels(event).inc()
        handler = self._by_event.get(event)
        if handler is not None and (from_composer or not event.startswith("compose.")):
            handler(event, fields)

    def _compose_done(self, event: str, f: dict) -> None:
        self.cores_captured.inc()
        self.core_bytes.inc(_number(f.get("core_size")))
        if f.get("truncated"):
            self.composer_failures.labels("truncated").inc()
        if f.get("stack") in STACK_RESULTS:   # absent in the lines of composers before the trace
            self.stack_traces.labels(f["stack"]).inc()
        if f.get("stack_seconds") is not None:
            self.stack_seconds.observe(_number(f["stack_seconds"]))

    def _upload_done(self, event: str, f: dict) -> None:
        route, kind = _route(f), _kind(f)
        self.uploads_ok.labels(route, kind).inc()
        self.upload_bytes.labels(route, kind).inc(_number(f.get("bytes")))
        self.upload_seconds.labels(kind).observe(_number(f.get("seconds")))

    def _upload_failed(self, event: str, f: dict) -> None:
        self.uploads_failed.labels(UPLOAD_FAILURES[event], _route(f), _kind(f)).inc()

    def _k8s_event(self, event: str, f: dict) -> None:
        self.k8s_events.labels(str(f.get("reason")), str(f.get("result"))).inc()

    # ------------------------------------------------------------ exposition

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """(body, content type) for a scrape, in the format the scraper asks for (OpenMetrics or text)."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


def _route(f: dict) -> str:
    """The route a line names (upload.invalid names none: the zip could not be read)."""
    return str(f.get("route") or "")


def _kind(f: dict) -> str:
    """The destination kind a line names (none for upload.invalid)."""
    kind = f.get("kind")
    return kind if kind in KINDS else ""


def _number(value: object) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return v if v >= 0 else 0.0
