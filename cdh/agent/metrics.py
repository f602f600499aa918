"""Prometheus metrics, served at ``/metrics`` on ``CDH_METRICS_PORT`` from the agent's loop.

Counters follow the log: :meth:`Metrics.tap` is a log tap (cdh/agent/log.py) that
turns the events the agent logs, and the composer lines it relays
(cdh/agent/composerlog.py, marked ``component=composer``), into counts. So a
metric moves exactly when a log line says the thing happened, at any log level.
Gauges (queue depth, pending zips, core_pattern, storage) are set just before
each scrape from the agent's state (cdh/agent/telemetry.py). Upload series carry
the destination's ``kind`` (s3, gs, azblob: as the log lines do); a kind has no
more values than that, so the series stay few.

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
                     "name.template", "truncated")
UPLOAD_FAILURES = {"upload.failed": "transient", "upload.denied": "denied", "upload.invalid": "invalid"}
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
        # uploads
        self.kind = "s3"  # the destination's, for lines that name none (upload.invalid): see use()
        self.uploads_ok = counter("cdh_uploads_succeeded", "Zips confirmed in the bucket (then deleted), by "
                                  "destination kind.", ("kind",))
        self.uploads_failed = counter(
            "cdh_uploads_failed", "Failed upload attempts: transient (retried with backoff), denied (bucket, "
            "keys or permissions), invalid (not a readable zip; left alone).", ("reason", "kind"))
        self.retries = counter("cdh_upload_retries", "Retries scheduled after a failed attempt.")
        self.upload_bytes = counter("cdh_upload_bytes", "Bytes of zips confirmed in the bucket.", ("kind",))
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
        self.storage_ok = gauge("cdh_storage_reachable", "1 when the last bucket check or upload succeeded.")
        self._zero_series()
        # log event -> handler(event, fields)
        self._by_event: dict[str, Callable[[str, dict], None]] = {
            "compose.done": self._compose_done,
            "compose.rate_limited": lambda event, f: self.rate_limited.inc(),
            "compose.skipped": lambda event, f: self.skipped.inc(),
            "upload.done": self._upload_done,
            "upload.retry_scheduled": lambda event, f: self.retries.inc(),
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
        for result in ("applied", "rejected"):
            self.reloads.labels(result)
        for reason in EVENT_REASONS:
            for result in EVENT_RESULTS:
                self.k8s_events.labels(reason, result)

    def use(self, kind: str) -> None:
        """The agent uploads to a destination of ``kind``: its upload series exist from now, at 0."""
        self.kind = kind
        self.uploads_ok.labels(kind)
        self.upload_bytes.labels(kind)
        self.upload_seconds.labels(kind)
        for reason in UPLOAD_FAILURES.values():
            self.uploads_failed.labels(reason, kind)

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

    def _upload_done(self, event: str, f: dict) -> None:
        kind = self._kind(f)
        self.uploads_ok.labels(kind).inc()
        self.upload_bytes.labels(kind).inc(_number(f.get("bytes")))
        self.upload_seconds.labels(kind).observe(_number(f.get("seconds")))

    def _upload_failed(self, event: str, f: dict) -> None:
        self.uploads_failed.labels(UPLOAD_FAILURES[event], self._kind(f)).inc()

    def _kind(self, f: dict) -> str:
        kind = f.get("kind")
        return kind if kind in KINDS else self.kind

    def _k8s_event(self, event: str, f: dict) -> None:
        self.k8s_events.labels(str(f.get("reason")), str(f.get("result"))).inc()

    # ------------------------------------------------------------ exposition

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """(body, content type) for a scrape, in the format the scraper asks for (OpenMetrics or text)."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


def _number(value: object) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return v if v >= 0 else 0.0
