"""The bucket check: write, read back and delete a probe object, with the agent's client and settings.

The probe goes under the static part of CDH_S3_KEY_PREFIX (bucket policies often allow writes under
one prefix only), carries the agent's encryption settings (a policy may require them) and a CRC32 (as
every upload does), and is named so that nobody takes it for a core: ``<prefix>cdh-doctor/<node>-<random>``.
The agent never deletes objects, so a store that refuses the delete still passes, with a note.
"""

from __future__ import annotations

import asyncio
import os
import time
import zlib

from cdh import config, s3
from cdh.doctor import FAIL, PASS, SKIP, Check

TIMEOUT_S = 60.0
HINTS = {
    "NoSuchBucket": "check CDH_S3_BUCKET (and CDH_S3_REGION / CDH_S3_ENDPOINT)",
    "AccessDenied": "the keys or role lack s3:PutObject / s3:GetObject on this bucket (and prefix)",
    "InvalidAccessKeyId": "wrong access key: check the cdh-s3 Secret (CDH_S3_ACCESS_KEY)",
    "SignatureDoesNotMatch": "wrong secret key: check the cdh-s3 Secret (CDH_S3_SECRET_KEY)",
    "NoCredentialsError": "no credentials: set the cdh-s3 Secret, or IRSA / Pod Identity / the node role",
    "EndpointConnectionError": "cannot connect: check CDH_S3_ENDPOINT, network policies and proxies",
    "ConnectTimeoutError": "no answer: check CDH_S3_ENDPOINT, network policies and proxies",
    "TimeoutError": "no answer: check CDH_S3_ENDPOINT, network policies and proxies",
}


def check(settings: config.Settings) -> Check:
    if not settings.s3_bucket:
        return Check("bucket", SKIP, "CDH_S3_BUCKET is not set", "set it (and the keys) to check the bucket")
    key = probe_key(settings)
    where = f"s3://{settings.s3_bucket}/{key}"
    if settings.s3_endpoint:
        where += f" at {settings.s3_endpoint}"
    try:
        note = asyncio.run(asyncio.wait_for(_probe(settings, key), TIMEOUT_S))
    except Exception as err:
        code = _code(err)
        return Check("bucket", FAIL, f"{where}: {code}: {s3.error_message(err)}",
                     HINTS.get(code, "check the bucket settings and credentials"))
    return Check("bucket", PASS, f"{where}: written, read back, {note}")


def probe_key(settings: config.Settings) -> str:
    static = settings.s3_key_prefix.split("{", 1)[0].lstrip("/")
    return f"{static}cdh-doctor/{os.uname().nodename}-{os.urandom(6).hex()}"


async def _probe(settings: config.Settings, key: str) -> str:
    body = f"cdh doctor probe, {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n".encode()
    async with s3.create_client(settings) as client:
        await client.put_object(Bucket=settings.s3_bucket, Key=key, Body=body, ChecksumAlgorithm="CRC32",
                                ChecksumCRC32=s3.crc32_b64(zlib.crc32(body)), **s3.encryption_args(settings))
        got = await client.get_object(Bucket=settings.s3_bucket, Key=key)
        async with got["Body"] as stream:
            data = await stream.read()
        if data != body:
            raise ValueError(f"read back {len(data)} bytes that differ from the {len(body)} written")
        try:
            await client.delete_object(Bucket=settings.s3_bucket, Key=key)
        except Exception as err:
            return f"not deleted ({_code(err)}: the agent needs no delete permission; remove it by hand)"
    return "deleted"


def _code(err: BaseException) -> str:
    """The S3 error code; a HEAD's bare 403 / 404 named as the GET's would be, to find its hint."""
    code = s3.error_code(err)
    return {"403": "AccessDenied", "404": "NoSuchBucket"}.get(code, code)
