"""`nox -s manifests`: every overlay renders, and every object is valid for every Kubernetes version
the README claims, checked offline and strictly (unknown fields are errors); so are the overlays
`cdh migrate` writes for the IBM values files of tests/compat/values.

Kubernetes kinds: the OpenAPI-derived JSON schemas bundled in kubernetes-validate. OpenShift's
SecurityContextConstraints and the Prometheus Operator's PodMonitor and PrometheusRule are not
Kubernetes kinds: they are checked against strict schemas in k8s-manifests/schemas/, written from
their CRDs (each file's $comment says from where).

The image: the base names a placeholder registry (your-registry.invalid) on purpose; the repository's
overlays keep it (one note line), and a user's overlay given as an argument must not (an error), nor
the examples' registry or digest.

Run: python -m tests.manifests.validate [DIR ...]   (exit 1 and one line per problem when anything fails)
     with DIRs (your own overlays): only those, and a placeholder image left in is an error.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile

import jsonschema
import kubernetes_validate

from tests.manifests.kustomize import (
    KUSTOMIZATIONS,
    PLACEHOLDER_IMAGE,
    PLAIN_FILES,
    ROOT,
    RenderError,
    kubectl,
    objects,
    placeholders,
)

# Keep in step with the README ("Deploy on Kubernetes").
K8S_VERSIONS = ("1.29", "1.30", "1.31", "1.32", "1.33", "1.34", "1.35", "1.36", "1.37")
EXTRA_SCHEMAS = {
    ("security.openshift.io/v1", "SecurityContextConstraints"):
        ROOT / "schemas" / "securitycontextconstraints-security-v1.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): ROOT / "schemas" / "podmonitor-monitoring-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): ROOT / "schemas" / "prometheusrule-monitoring-v1.json",
}


def problems_of(obj: dict) -> list[str]:
    """Why ``obj`` is invalid, per version; empty when it is valid everywhere."""
    extra = EXTRA_SCHEMAS.get((obj.get("apiVersion"), obj.get("kind")))
    if extra is not None:
        schema = json.loads(extra.read_text())
        validator = jsonschema.Draft7Validator(schema)
        return [f"{_path(e.absolute_path)}: {e.message}" for e in validator.iter_errors(obj)]
    out = []
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            out.append(f"Kubernetes {version}: {_path(err.absolute_path)}: {err.message}")
        except kubernetes_validate.SchemaNotFoundError:
            out.append(f"Kubernetes {version}: no schema for {obj['apiVersion']} {obj['kind']}")
    return out


def migrate_outputs(into: str) -> list[str]:
    """`cdh migrate` of every IBM values file of tests/compat/values: the overlays it writes."""
    from cdh.tools import migrate

    out = []
    for values in sorted((ROOT.parent / "tests" / "compat" / "values").glob("*.yaml")):
        target = os.path.join(into, values.stem)
        with contextlib.redirect_stdout(io.StringIO()):
            if migrate.run(str(values), target, str(ROOT), None) != 0:
                raise SystemExit(f"cdh migrate {values} failed")
        out.append(target)
    return out


def _path(parts) -> str:
    return ".".join(str(p) for p in parts) or "(top)"


def main(argv: list[str] | None = None) -> int:
    users = [os.path.abspath(p) for p in (sys.argv[1:] if argv is None else argv)]
    try:
        kubectl()
    except RenderError as err:
        print(err, file=sys.stderr)
        return 1
    failures: list[str] = []
    placeheld: list[str] = []
    checked: dict[str, list[str]] = {}  # one validation per distinct object, shared by the overlays
    count = 0
    migrated = tempfile.TemporaryDirectory(prefix="cdh-migrate-")
    targets = users or [*KUSTOMIZATIONS, *PLAIN_FILES, *migrate_outputs(migrated.name)]
    for target in targets:
        try:
            objs = objects(target)
        except RenderError as err:
            failures.append(str(err))
            continue
        for obj in objs:
            count += 1
            key = json.dumps(obj, sort_keys=True)
            if key not in checked:
                checked[key] = problems_of(obj)
            name = f"{target}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
            failures.extend(f"{name}: {p}" for p in checked[key])
        found = placeholders(objs)
        if users:
            failures.extend(f"{target}: {p}" for p in found)
        elif found:
            placeheld.append(target)
    for line in failures:
        print(line, file=sys.stderr)
    migrated.cleanup()
    print(f"{len(targets)} targets, {count} objects ({len(checked)} distinct), "
          f"Kubernetes {K8S_VERSIONS[0]}-{K8S_VERSIONS[-1]} strict: "
          + ("valid" if not failures else f"{len(failures)} problems"))
    if placeheld:
        print(f"note: {len(placeheld)} targets name the placeholder image {PLACEHOLDER_IMAGE} or the "
              "examples' registry and digest, as shipped; your own overlay must set `images:` (check it with "
              "`nox -s manifests -- DIR`; README \"Deploy on Kubernetes\")")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
