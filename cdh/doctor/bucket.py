"""The bucket checks: write, read back and delete a probe object, through the agent's store, in the
main destination and in each route's (cdh/routes.py), each with its own credentials; and the routes
file itself, read and checked as the agent reads it.

The probe goes under the static part of the destination's key prefix (bucket policies often allow
writes under one prefix only), carries the agent's object settings (encryption: a policy may require
it) and a checksum (as every upload does), and is named so that nobody takes it for a core:
``<prefix>cdh-doctor/<node>-<random>``. The agent never deletes objects, so a store that refuses the
delete still passes, with a note.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time

from cdh import config, destination, routes
from cdh.doctor import FAIL, PASS, SKIP, Check

TIMEOUT_S = 60.0


def check_all(settings: config.Settings) -> list[Check]:
    """The routes file (when set), then the main bucket (when zips go there), then each route's."""
    try:
        table = routes.load(settings)
    except config.ConfigError as err:
        return [Check("routes", FAIL, str(err), "fix the file: the agent keeps its previous routes until "
                                                  "then, and refuses to start with it"), check(settings)]
    checks = []
    if settings.routes_file:
        checks.append(Check("routes", PASS, f"{settings.routes_file}: {len(table.routes)} routes; "
                                            f"default {table.default}, unknown namespace {table.unknown}"))
    if table.uses_main or not settings.routes_file:
        checks.append(check(settings))
    for route in table.routes:
        checks.append(check(settings, route))
    return checks


def check(settings: config.Settings, route: routes.Route | None = None) -> Check:
    """The main destination's bucket, or ``route``'s with its own credentials."""
    if route is not None:
        dest = routes.destination_of(route, settings)
        name = f"bucket {route.name}"
        creds = (f"keys from {route.credentials.directory}" if route.credentials
                 else "the platform's credential chain")
    else:
        name, creds = "bucket", ""
        if not destination.configured(settings):
            return Check(name, SKIP, "no destination: CDH_DESTINATION and CDH_S3_BUCKET are not set",
                         "set one (and the credentials) to check the bucket")
        try:
            dest = destination.from_settings(settings)
        except config.ConfigError as err:
            return Check(name, FAIL, str(err), "fix that setting")
    from cdh.store import open_store

    key = probe_key(dest)
    where = dest.url(key) + (f" at {dest.endpoint}" if dest.endpoint else "")
    where += f" with {creds}" if creds else ""
    store = open_store(dest)
    try:
        note = asyncio.run(asyncio.wait_for(_probe(store, key), TIMEOUT_S))
    except Exception as err:
        failure = store.failure(err)
        code = _code(failure.code)
        if (failure.status or 0) >= 500 and (plain := _without_encryption(dest)) is not None:
            return _encryption_check(name, plain, key, where, f"{code}: {failure.message}")
        hint = store.hints.get(code, "check the bucket settings and credentials")
        if route is not None:
            hint += f" (route {route.name} in {settings.routes_file})"
        return Check(name, FAIL, f"{where}: {code}: {failure.message}", hint)
    return Check(name, PASS, f"{where}: written, read back, {note}")


def _without_encryption(dest: destination.Destination) -> destination.Destination | None:
    if dest.s3 is None or dest.s3.sse == "none":
        return None
    return dataclasses.replace(dest, s3=dataclasses.replace(dest.s3, sse="none", sse_kms_key_id=""))


def _encryption_check(name: str, plain: destination.Destination, key: str, where: str, error: str) -> Check:
    """The store failed a write with our encryption with a server error: is it the encryption? Some
    stores answer 500 to an encryption they cannot apply (SeaweedFS: no SSE key, an unknown KMS key)."""
    from cdh.store import open_store

    try:
        asyncio.run(asyncio.wait_for(_probe(open_store(plain), key), TIMEOUT_S))
    except Exception:
        return Check(name, FAIL, f"{where}: {error}",
                     "the store fails writes with and without CDH_S3_SSE: check it is up and healthy")
    return Check(name, FAIL, f"{where}: {error} with CDH_S3_SSE (a probe without it was written and "
                 "deleted): the store cannot apply this encryption",
                 "configure the store's encryption (SeaweedFS: an SSE key, the KMS key) or change "
                 "CDH_S3_SSE / CDH_S3_SSE_KMS_KEY_ID; the agent retries such uploads, and keeps the zips")


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
