"""Three teams, each with its own key pair and buckets, on a real SeaweedFS that enforces it (each
access key may touch its own buckets only; moto would not check): the stage of the routes tests
(cdh/routes.py). The ``tenant_store`` fixture (tests/support/fixtures.py) starts one per module."""

from __future__ import annotations

import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

from tests.support.agentproc import base_env
from tests.support.projected import Volume
from tests.support.s3server import REGION, list_keys
from tests.support.seaweed import SeaweedServer, Tenant

TEAMS = ("main", "team-a", "team-b")  # main: the platform's own (CDH_S3_BUCKET)
SETS = 4  # buckets per team, "<team>-cores-<n>": each test takes a set of its own


@dataclass(frozen=True)
class Team:
    name: str
    access_key: str
    secret_key: str

    def bucket(self, n: int) -> str:
        return f"{self.name}-cores-{n}"


TEAM = {name: Team(name, f"AKIA{name.upper().replace('-', '')}0000001", f"{name}-secret-0123456789")
        for name in TEAMS}


def start(log_path: str) -> SeaweedServer:
    tenants = [Tenant(t.access_key, t.secret_key, [t.bucket(n) for n in range(SETS)]) for t in TEAM.values()]
    server = SeaweedServer(log_path, tenants=tenants).start()
    for t in TEAM.values():
        for n in range(SETS):
            server.create_bucket(t.bucket(n))
    return server


def client(server: SeaweedServer, team: str):
    t = TEAM[team]
    return server.client(access_key=t.access_key, secret_key=t.secret_key, retries=1)


def secret_dir(root: Path, team: str, end: str = "\n") -> Path:
    """The team's route Secret mounted as the kubelet lays one out (defaultMode 0400, as the example
    overlay mounts it); called again, a new version of it (``end``: what follows each key)."""
    d = root / f"secret-{team}"
    Volume(d, 0o400).update({"access-key": TEAM[team].access_key + end,
                             "secret-key": TEAM[team].secret_key + end})
    return d


def team_routes(tmp_path: Path, n: int, recipient: str) -> str:
    """The routes file of the three-team tests: team-a's namespaces to its bucket under ``cores/``,
    encrypted to ``recipient``; team-b's to its bucket keyed by namespace and pod; the rest to main."""
    return textwrap.dedent(f"""\
        routes:
          - name: team-a
            namespaces: [team-a, "team-a-*"]
            destination: s3://{TEAM['team-a'].bucket(n)}/cores/
            credentials: {secret_dir(tmp_path, 'team-a')}
            recipients: [{recipient}]
          - name: team-b
            namespaces: [team-b]
            destination: s3://{TEAM['team-b'].bucket(n)}
            credentials: {secret_dir(tmp_path, 'team-b')}
            key_prefix: "{{namespace}}/{{pod}}/"
        default: main
        """)


def flow(name: str, namespace: str, bucket: str, creds: Path) -> str:
    """One route on one line of YAML."""
    return (f'  - {{name: {name}, namespaces: [{namespace}], destination: "s3://{bucket}", '
            f'credentials: {creds}}}\n')


def main_settings(server: SeaweedServer, n: int) -> dict[str, str]:
    """The main destination: the platform's bucket of set ``n``, with its own keys."""
    main = TEAM["main"]
    return {"CDH_S3_ENDPOINT": server.url, "CDH_S3_REGION": REGION, "CDH_S3_ADDRESSING": "path",
            "CDH_S3_BUCKET": main.bucket(n), "CDH_S3_ACCESS_KEY": main.access_key,
            "CDH_S3_SECRET_KEY": main.secret_key}


def agent_env(server: SeaweedServer, tmp_path, n: int, routes_file: str, **extra: str) -> dict[str, str]:
    return base_env(tmp_path, main_settings(server, n), CDH_ROUTES_FILE=routes_file, **extra)


def objects(server: SeaweedServer, bucket: str) -> dict[str, dict[str, str]]:
    """Key -> metadata of every object in ``bucket`` (read with the server's admin keys)."""
    admin = server.client()
    return {k: admin.head_object(Bucket=bucket, Key=k)["Metadata"] for k in list_keys(admin, bucket)}


def denied(call) -> bool:
    """Whether ``call`` is refused by the server for want of permission."""
    try:
        call()
    except Exception as err:
        return any(s in str(err) for s in ("AccessDenied", "Forbidden", "403"))
    return False


def age_decrypt(identity: str, data: bytes) -> bytes | None:
    """age's own CLI (not cdh) opening ``data`` with ``identity``; None when it refuses."""
    proc = subprocess.run(["age", "-d", "-i", identity], input=data, capture_output=True)
    return proc.stdout if proc.returncode == 0 else None
