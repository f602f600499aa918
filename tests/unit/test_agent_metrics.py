"""Metrics follow the log: every counter moves when its log line is written."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from cdh.agent.metrics import Metrics

CDH = Path(__file__).resolve().parents[2] / "cdh"


def values(m: Metrics) -> dict[tuple[str, tuple], float]:
    body, _ = m.render()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(body.decode()) for s in fam.samples}


def test_counters_move_with_the_log_events():
    m = Metrics()
    m.use_routes({"main": "s3"})
    m.tap("info", "upload.done", {"bytes": 1000, "seconds": 0.3, "route": "main", "kind": "s3"})
    m.tap("info", "upload.done", {"bytes": 24, "seconds": 7, "route": "main", "kind": "s3"})
    m.tap("warning", "upload.failed", {"route": "main", "kind": "s3"})
    m.tap("error", "upload.denied", {"route": "main", "kind": "s3"})
    m.tap("info", "upload.retry_scheduled", {})
    m.tap("info", "config.reloaded", {})
    m.tap("error", "config.rejected", {})
    v = values(m)
    main = (("kind", "s3"), ("route", "main"))
    assert v[("cdh_uploads_succeeded_total", main)] == 2
    assert v[("cdh_upload_bytes_total", main)] == 1024
    assert v[("cdh_upload_duration_seconds_count", (("kind", "s3"),))] == 2
    assert v[("cdh_upload_duration_seconds_bucket", (("kind", "s3"), ("le", "0.5")))] == 1
    assert v[("cdh_uploads_failed_total", (("kind", "s3"), ("reason", "transient"), ("route", "main")))] == 1
    assert v[("cdh_uploads_failed_total", (("kind", "s3"), ("reason", "denied"), ("route", "main")))] == 1
    # exists before the first; an unreadable zip has no route and no kind yet
    assert v[("cdh_uploads_failed_total", (("kind", ""), ("reason", "invalid"), ("route", "")))] == 0
    assert v[("cdh_upload_retries_total", ())] == 1
    assert v[("cdh_config_reloads_total", (("result", "applied"),))] == 1
    assert v[("cdh_config_reloads_total", (("result", "rejected"),))] == 1


def test_upload_series_by_route_and_kind_from_the_routes_in_use():
    m = Metrics()
    m.use_routes({"main": "azblob", "team-a": "s3"})
    m.storage_ok.labels("team-a").set(1)
    m.tap("info", "upload.done", {"bytes": 7, "seconds": 1, "route": "team-a", "kind": "s3"})
    m.tap("warning", "upload.no_room", {"route": "team-a", "kind": "s3"})
    m.tap("warning", "upload.dropped", {})
    v = values(m)
    team_a, main = (("kind", "s3"), ("route", "team-a")), (("kind", "azblob"), ("route", "main"))
    assert v[("cdh_uploads_succeeded_total", team_a)] == 1
    assert v[("cdh_uploads_succeeded_total", main)] == 0
    assert ("cdh_uploads_succeeded_total", (("kind", "s3"), ("route", "main"))) not in v
    assert v[("cdh_upload_bytes_total", team_a)] == 7
    assert v[("cdh_upload_duration_seconds_count", (("kind", "azblob"),))] == 0
    assert v[("cdh_uploads_failed_total", (("kind", "s3"), ("reason", "no_room"), ("route", "team-a")))] == 1
    assert v[("cdh_uploads_failed_total", (("kind", "azblob"), ("reason", "denied"), ("route", "main")))] == 0
    assert v[("cdh_zips_dropped_total", ())] == 1
    assert v[("cdh_storage_reachable", (("route", "team-a"),))] == 1
    m.use_routes({"main": "azblob"})  # team-a's route removed: its gauge goes, its counters stay
    v = values(m)
    assert ("cdh_storage_reachable", (("route", "team-a"),)) not in v
    assert v[("cdh_uploads_succeeded_total", team_a)] == 1


def test_composer_lines_count_only_when_they_come_from_the_composer():
    m = Metrics()
    composer = {"component": "composer"}
    m.tap("info", "compose.done", {**composer, "core_size": 4096, "truncated": None})
    m.tap("info", "compose.done", {**composer, "core_size": 10, "truncated": "deadline"})
    m.tap("info", "compose.done", {"core_size": 99})  # the agent never says this; not a capture
    m.tap("error", "compose.failed", composer)
    m.tap("error", "something.new", composer)
    m.tap("info", "compose.rate_limited", composer)
    m.tap("info", "compose.skipped", composer)
    m.tap("error", "upload.denied", {})  # an agent error is not a composer failure
    v = values(m)
    assert v[("cdh_cores_captured_total", ())] == 2
    assert v[("cdh_core_bytes_captured_total", ())] == 4106
    failures = {dict(k[1])["reason"]: n for k, n in v.items() if k[0] == "cdh_composer_failures_total"}
    assert failures["compose.failed"] == 1 and failures["truncated"] == 1 and failures["something.new"] == 1
    assert failures["core.write_failed"] == 0 and "upload.denied" not in failures
    assert v[("cdh_crashes_rate_limited_total", ())] == 1
    assert v[("cdh_crashes_skipped_total", ())] == 1


def test_stack_traces_count_by_result_never_by_signature():
    m = Metrics()
    composer = {"component": "composer", "core_size": 1}
    m.tap("info", "compose.done", {**composer, "stack": "signed", "stack_seconds": 0.004,
                                   "signature": "1-0123456789abcdef", "top_frame": "srv!f"})
    m.tap("info", "compose.done", {**composer, "stack": "unsigned", "stack_seconds": 0.002})
    m.tap("info", "compose.done", {**composer, "stack": "off"})
    m.tap("info", "compose.done", composer)   # a composer from before the stack trace
    v = values(m)
    results = {dict(k[1])["result"]: n for k, n in v.items() if k[0] == "cdh_stack_traces_total"}
    assert results == {"signed": 1, "unsigned": 1, "failed": 0, "off": 1}
    assert v[("cdh_stack_trace_seconds_count", ())] == 2
    assert v[("cdh_stack_trace_seconds_bucket", (("le", "0.005"),))] == 2
    body, _ = m.render()
    assert b"0123456789abcdef" not in body and b"srv!f" not in body


def test_every_counted_event_is_one_cdh_logs():
    """A renamed log event would silently stop its metric: each one the metrics count is in the code."""
    source = "\n".join(p.read_text() for p in CDH.rglob("*.py") if p.name != "metrics.py")
    counted = set(Metrics()._by_event) - {"compose.rate_limited"}  # the composer's rate limit: issue 7
    missing = [e for e in counted if not re.search(rf"[\"']{re.escape(e)}[\"']", source)]
    assert not missing


def test_openmetrics_when_the_scraper_asks():
    m = Metrics()
    body, content_type = m.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text") and body.endswith(b"# EOF\n")
    body, content_type = m.render("")
    assert content_type.startswith("text/plain") and b"cdh_build_info" in body


def test_upload_series_carry_the_destination_kind():
    m = Metrics()
    m.use_routes({"main": "azblob"})
    m.tap("info", "upload.done", {"bytes": 5, "seconds": 1, "route": "main", "kind": "azblob"})
    m.tap("error", "upload.invalid", {})  # no store was asked: no route, no kind
    # an upload still on the old store after a reload moved main from Cloud Storage to Azure
    m.tap("warning", "upload.failed", {"route": "main", "kind": "gs"})
    v = values(m)
    assert v[("cdh_uploads_succeeded_total", (("kind", "azblob"), ("route", "main")))] == 1
    assert v[("cdh_upload_duration_seconds_count", (("kind", "azblob"),))] == 1
    assert v[("cdh_uploads_failed_total", (("kind", ""), ("reason", "invalid"), ("route", "")))] == 1
    assert v[("cdh_uploads_failed_total", (("kind", "gs"), ("reason", "transient"), ("route", "main")))] == 1
    assert not [k for k in v if ("kind", "s3") in k[1]]  # nothing of a kind the agent never used
