"""Streamed bodies through the real stack (aiobotocore, aiohttp, botocore's retries) to moto_server:
a retry resends the part from its first byte, a file that shrinks fails the request instead of
storing a shorter object, and a failed multipart upload gives every request slot back."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest
from botocore.exceptions import ClientError

from cdh import destination
from cdh.agent.log import Log
from cdh.agent.stores import Stores
from cdh.agent.upload import Outcome, Uploader
from cdh.config import load
from cdh.store.body import FileSlice, SourceChanged, crc32_of_slice
from cdh.store.s3 import crc32_b64, create_client
from tests.support.faultproxy import Rule
from tests.support.s3server import list_keys, pending_uploads
from tests.support.zips import make_zip

MiB = 1 << 20


def settings_for(tmp_path, s3_server, bucket, url=None, **extra):
    return load([{"CDH_HOST_DIR": str(tmp_path), "CDH_CORE_DIR": str(tmp_path),
                  **s3_server.agent_env(bucket, url), **extra}])


@pytest.fixture
def blob(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(os.urandom(6 * MiB + 3))
    fd = os.open(path, os.O_RDWR)
    yield fd, path.read_bytes()
    os.close(fd)


async def put(settings, bucket, fd, size, crc):
    body = FileSlice(fd, 0, size, "blob")
    async with create_client(destination.from_settings(settings).s3) as client:
        return await body.sent_by(client.put_object(Bucket=bucket, Key="k", Body=body,
                                                    ChecksumAlgorithm="CRC32", ChecksumCRC32=crc32_b64(crc)))


async def test_retries_resend_the_body_from_its_first_byte(tmp_path, s3_server, fault_proxy, s3, bucket,
                                                           blob):
    fd, data = blob
    resets = fault_proxy.add(Rule("reset", method="PUT", times=1, reset_after=3 * MiB))  # mid-body
    errors = fault_proxy.add(Rule("error", method="PUT", status=500, code="InternalError", times=1))
    settings = settings_for(tmp_path, s3_server, bucket, fault_proxy.url)
    await put(settings, bucket, fd, len(data), crc32_of_slice(fd, 0, len(data), "blob"))
    assert (resets.hits, errors.hits) == (1, 1)
    got = s3.get_object(Bucket=bucket, Key="k")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


async def test_a_file_that_shrinks_under_the_upload_stores_nothing(tmp_path, s3_server, s3, bucket, blob):
    fd, data = blob
    crc = crc32_of_slice(fd, 0, len(data), "blob")
    os.ftruncate(fd, len(data) - MiB)  # after the checksum pass, before the send
    settings = settings_for(tmp_path, s3_server, bucket)
    with pytest.raises(SourceChanged, match=r"^blob: the file ends at byte 5242883 but the upload needs"):
        await put(settings, bucket, fd, len(data), crc)
    assert list_keys(s3, bucket) == []


async def test_a_failed_multipart_upload_gives_back_every_slot(tmp_path, s3_server, fault_proxy, s3, bucket):
    """The parts in flight when one fails are cancelled; every slot must come back, or the agent
    would upload ever slower and finally not at all."""
    fault_proxy.add(Rule("error", method="PUT", path=r"partNumber=2\b", status=403, code="AccessDenied"))
    settings = settings_for(tmp_path, s3_server, bucket, fault_proxy.url, CDH_PART_SIZE="5MiB",
                            CDH_MULTIPART_THRESHOLD="5MiB", CDH_PART_CONCURRENCY="3")
    z = make_zip(tmp_path, 40 * MiB)
    stores = Stores()
    await stores.open(destination.from_settings(settings), settings)
    try:
        uploader = Uploader(settings, stores, Log())
        result = await uploader.upload(z.path)
        assert result.outcome is Outcome.DENIED
        for _ in range(settings.part_concurrency):
            await asyncio.wait_for(uploader.slots.acquire(), 5)
    finally:
        await stores.close()
    assert os.path.exists(z.path)  # the zip stays
    assert pending_uploads(s3, bucket) == []  # the upload was aborted
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key=z.filename)


async def test_the_uploader_streams_a_zip_and_confirms_it(tmp_path, s3_server, s3, bucket):
    settings = settings_for(tmp_path, s3_server, bucket, CDH_PART_SIZE="5MiB", CDH_MULTIPART_THRESHOLD="5MiB")
    zips = [make_zip(tmp_path, n) for n in (1000, 5 * MiB - 300, 17 * MiB + 1)]  # one PUT, one part, 4 parts
    stores = Stores()
    await stores.open(destination.from_settings(settings), settings)
    try:
        uploader = Uploader(settings, stores, Log())
        results = await asyncio.gather(*(uploader.upload(z.path) for z in zips))
    finally:
        await stores.close()
    assert [r.outcome for r in results] == [Outcome.DONE] * 3
    for z in zips:
        got = s3.get_object(Bucket=bucket, Key=z.filename)["Body"].read()
        assert hashlib.sha256(got).hexdigest() == z.sha256
        assert not os.path.exists(z.path)
