"""Destinations (cdh/destination.py): what a store is built from."""

from __future__ import annotations

from cdh import destination
from cdh.config import load


def test_the_destination_from_the_settings_keeps_its_secrets_out_of_its_repr():
    dest = destination.from_settings(load([{
        "CDH_HOST_DIR": "/tmp/h", "S3_BUCKET_NAME": "cores", "CDH_S3_KEY_PREFIX": "{node}/",
        "CDH_S3_ENDPOINT": "http://127.0.0.1:9000", "CDH_S3_ACCESS_KEY": "AKIDSECRETID",
        "CDH_S3_SECRET_KEY": "very-secret"}]))
    assert (dest.kind, dest.bucket, dest.key_prefix_template) == ("s3", "cores", "{node}/")
    assert dest.url("a/b.zip") == "s3://cores/a/b.zip"
    assert dest.object_url("a b.zip") == "http://127.0.0.1:9000/cores/a%20b.zip"
    assert "very-secret" not in repr(dest) and "AKIDSECRETID" not in repr(dest)
