"""Read the agent's /metrics, /healthz and /readyz as Prometheus and the kubelet would."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


class Samples:
    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [s for fam in text_string_to_metric_families(text) for s in fam.samples]

    def value(self, name: str, **labels: str) -> float:
        """The one sample ``name`` with exactly ``labels`` (fails when absent: a missing series is a bug)."""
        found = [s.value for s in self.samples if s.name == name and s.labels == labels]
        assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
        return found[0]

    def names(self) -> set[str]:
        return {s.name for s in self.samples}


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return Samples(r.read().decode())


def probe(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, dict]:
    """(status, JSON body) of /healthz or /readyz; 503 is an answer, not an error."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
