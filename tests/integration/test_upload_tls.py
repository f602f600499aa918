"""Streamed bodies over HTTPS (what real stores speak): `cdh sweep` on uvloop's TLS transport
to a moto_server serving TLS with a private CA, one PUT and one multipart upload, byte-identical."""

from __future__ import annotations

import os

from tests.support.agentproc import base_env, run_sweep
from tests.support.s3server import list_keys, object_sha256, pending_uploads
from tests.support.zips import make_zip

MiB = 1 << 20


def test_sweep_streams_parts_over_tls(tmp_path, tls_s3_server):
    server, cert = tls_s3_server
    bucket = server.create_bucket()
    s3 = server.client()
    core_dir = tmp_path / "cores"
    core_dir.mkdir(mode=0o700)
    zips = [make_zip(core_dir, 3000), make_zip(core_dir, 13 * MiB + 5)]
    env = base_env(tmp_path, server.agent_env(bucket), CDH_CORE_DIR=str(core_dir), CDH_S3_CA_BUNDLE=str(cert),
                   CDH_MULTIPART_THRESHOLD="5MiB", CDH_PART_SIZE="5MiB", CDH_PART_CONCURRENCY="2")
    done = run_sweep(env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(list_keys(s3, bucket)) == sorted(z.filename for z in zips)
    for z in zips:
        assert object_sha256(s3, bucket, z.filename) == z.sha256
        assert not os.path.exists(z.path)
    assert pending_uploads(s3, bucket) == []
    assert '"verified":"size+etag+crc32"' in done.stdout
