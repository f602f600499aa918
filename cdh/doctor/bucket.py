"""The bucket check: write, read back and delete a probe object, through the agent's store.

The probe goes under the static part of the destination's key prefix (bucket policies often allow
writes under one prefix only), carries the agent's object settings (encryption: a policy may require
it) and a checksum (as every upload does), and is named so that nobody takes it for a core:
``<prefix>cdh-doctor/<node>-<random>``. The agent never deletes objects, so a store that refuses the
delete still passes, with a note.
"""

from __future__ import annotations

import asyncio
import os
import time

from cdh import config, destination
from cdh.doctor import FAIL, PASS, SKIP, Check

TIMEOUT_S = 60.0


def check(settings: config.Settings) -> Check:
    if not settings.destination and not settings.s3_bucket:
        return Check("bucket", SKIP, "no destination: CDH_DESTINATION and CDH_S3_BUCKET are not set",
                     "set one (and the credentials) to check the bucket")
    try:
        dest = destination.from_settings(settings)
    except config.ConfigError as err:
        return Check("bucket", FAIL, str(err), "fix that setting")
    from cdh.store import open_store

    key = probe_key(dest)
    where = dest.url(key) + (f" at {dest.endpoint}" if dest.endpoint else "")
    store = open_store(dest)
    try:
        note = asyncio.run(asyncio.wait_for(_probe(store, key), TIMEOUT_S))
    except Exception as err:
        failure = store.failure(err)
        code = _code(failure.code)
        return Check("bucket", FAIL, f"{where}: {code}: {failure.message}",
                     store.hints.get(code, "check the bucket settings and credentials"))
    return Check("bucket", PASS, f"{where}: written, read back, {note}")


def probe_key(dest: destination.Destination) -> str:
    static = dest.key_prefix_template.split("{", 1)[0].lstrip("/")
    return f"{static}cdh-doctor/{os.uname().nodename}-{os.urandom(6).hex()}"


async def _probe(store, key: str) -> str:
    body = f"cdh doctor probe, {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n".encode()
    async with store:
        await store.put_bytes(key, body)
        data = await store.get_bytes(key)
        if data != body:
            raise ValueError(f"read back {len(data)} bytes that differ from the {len(body)} written")
        try:
            await store.delete(key)
        except Exception as err:
            return (f"not deleted ({_code(store.failure(err).code)}: the agent needs no delete permission; "
                    "remove it by hand)")
    return "deleted"


def _code(code: str) -> str:
    """A HEAD's bare 403 / 404 named as the GET's would be, to find its hint."""
    return {"403": "AccessDenied", "404": "NoSuchBucket"}.get(code, code)
