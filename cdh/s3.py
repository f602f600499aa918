"""S3 as every part of cdh speaks it (the agent, ``cdh ls``/``get``, ``cdh doctor``): one way to build
the client, to read its errors, to ask for encryption and to send a CRC32.

botocore does the hard parts: signing, retries with backoff (standard mode),
and the credential chain when no static keys are set (env, shared file, IRSA
web identity, EKS Pod Identity, instance role). Importing this module is cheap:
aiobotocore is imported when a client is built.
"""

from __future__ import annotations

import base64
import contextlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cdh.config import Settings


def client_config(settings: Settings, max_pool_connections: int = 10):
    from aiobotocore.config import AioConfig

    return AioConfig(
        # No SHA-256 of the payload: every upload carries a CRC32 the store verifies (see
        # cdh/agent/verify.py), which is what botocore itself does over HTTPS. Over plain HTTP
        # botocore would otherwise hash every byte (its cost: README "Performance").
        s3={"addressing_style": settings.s3_addressing, "payload_signing_enabled": False},
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=10,
        read_timeout=120,
        max_pool_connections=max_pool_connections,
    )


@contextlib.asynccontextmanager
async def create_client(settings: Settings, max_pool_connections: int = 10):
    """An async context manager yielding an aiobotocore S3 client for ``settings``.

    A region or endpoint botocore refuses is a ConfigError naming the settings (one line, exit 3),
    raised before anything else is done (the agent builds its client before it touches the node).
    """
    from aiobotocore.session import get_session
    from botocore.exceptions import BotoCoreError

    kwargs: dict = {
        "region_name": settings.s3_region or None,
        "endpoint_url": settings.s3_endpoint,
        "config": client_config(settings, max_pool_connections),
        "verify": settings.s3_ca_bundle or settings.s3_verify_tls,
    }
    if settings.s3_access_key:
        kwargs["aws_access_key_id"] = settings.s3_access_key
        kwargs["aws_secret_access_key"] = settings.s3_secret_key
        kwargs["aws_session_token"] = settings.s3_session_token or None
    async with contextlib.AsyncExitStack() as stack:
        try:
            client = await stack.enter_async_context(get_session().create_client("s3", **kwargs))
        except (ValueError, BotoCoreError) as err:
            from cdh.config import ConfigError

            where = ", ".join(f"{settings.env_name(a)}={getattr(settings, a)!r}"
                              for a in ("s3_region", "s3_endpoint") if getattr(settings, a))
            raise ConfigError(f"the S3 client cannot be built ({where or 'defaults'}): {err}") from None
        yield client


def encryption_args(settings: Settings) -> dict[str, Any]:
    """CDH_S3_SSE as request arguments, for uploads and for `cdh doctor`'s probe (a bucket policy may
    demand them)."""
    args: dict[str, Any] = {}
    if settings.s3_sse != "none":
        args["ServerSideEncryption"] = settings.s3_sse
        if settings.s3_sse_kms_key_id:
            args["SSEKMSKeyId"] = settings.s3_sse_kms_key_id
    return args


def crc32_b64(crc: int) -> str:
    """A CRC32 as S3 carries it (``x-amz-checksum-crc32``): its 4 big-endian bytes in base64."""
    return base64.b64encode(crc.to_bytes(4, "big")).decode()


# ---------------------------------------------------------------- errors


def error_code(err: BaseException) -> str:
    """The S3 error code of a botocore ClientError, else the exception's class name."""
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code") or type(err).__name__)
    return type(err).__name__


def http_status(err: BaseException) -> int | None:
    """The HTTP status of a botocore ClientError, else None."""
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        return response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return None


def error_message(err: BaseException) -> str:
    """The store's own message for a ClientError, else the exception's text (never request details)."""
    response = getattr(err, "response", None)
    if isinstance(response, dict) and response.get("Error", {}).get("Message"):
        return str(response["Error"]["Message"])
    return str(err) or type(err).__name__


def describe_error(err: BaseException) -> str:
    """One line for an S3 or connection error: the S3 code and message, never request details."""
    response = getattr(err, "response", None)
    if isinstance(response, dict) and "Error" in response:
        e = response["Error"]
        return f"{e.get('Code', '?')}: {e.get('Message') or 'HTTP ' + str(http_status(err))}"
    return f"{type(err).__name__}: {err}"
