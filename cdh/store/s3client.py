"""S3 as the S3 store speaks it (aiobotocore): one way to build the client, to read its errors, to
ask for encryption and to send a CRC32.

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
    from cdh.destination import S3Access


def client_config(access: S3Access, max_pool_connections: int = 10):
    from aiobotocore.config import AioConfig

    return AioConfig(
        # No SHA-256 of the payload: every upload carries a CRC32 the store verifies (see
        # cdh/store/s3upload.py), which is what botocore itself does over HTTPS. Over plain HTTP
        # botocore would otherwise hash every byte (its cost: README "Performance").
        s3={"addressing_style": access.addressing, "payload_signing_enabled": False},
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=10,
        read_timeout=120,
        max_pool_connections=max_pool_connections,
    )


@contextlib.asynccontextmanager
async def create_client(access: S3Access, max_pool_connections: int = 10):
    """An async context manager yielding an aiobotocore S3 client for ``access``.

    A region or endpoint botocore refuses is a ConfigError (one line, exit 3), raised before anything
    else is done: the agent builds its store before it touches the node.
    """
    from aiobotocore.session import get_session
    from botocore.exceptions import BotoCoreError

    kwargs: dict = {
        "region_name": access.region or None,
        "endpoint_url": access.endpoint,
        "config": client_config(access, max_pool_connections),
        "verify": access.ca_bundle or access.verify_tls,
    }
    if access.access_key:
        kwargs["aws_access_key_id"] = access.access_key
        kwargs["aws_secret_access_key"] = access.secret_key
        kwargs["aws_session_token"] = access.session_token or None
    async with contextlib.AsyncExitStack() as stack:
        try:
            client = await stack.enter_async_context(get_session().create_client("s3", **kwargs))
        except (ValueError, BotoCoreError) as err:
            from cdh.config import ConfigError

            raise ConfigError(f"the S3 client cannot be built from region {access.region!r} and endpoint "
                              f"{access.endpoint!r} (CDH_S3_REGION and CDH_S3_ENDPOINT; IBM: S3_REGION, "
                              f"S3_ENDPOINT): {err}") from None
        yield client


def encryption_args(access: S3Access) -> dict[str, Any]:
    """CDH_S3_SSE as request arguments, for uploads and for `cdh doctor`'s probe (a bucket policy may
    demand them)."""
    args: dict[str, Any] = {}
    if access.sse != "none":
        args["ServerSideEncryption"] = access.sse
        if access.sse_kms_key_id:
            args["SSEKMSKeyId"] = access.sse_kms_key_id
    return args


def crc32_b64(crc: int) -> str:
    """A CRC32 as S3 carries it (``x-amz-checksum-crc32``): its 4 big-endian bytes in base64."""
    return base64.b64encode(crc.to_bytes(4, "big")).decode()


# ---------------------------------------------------------------- errors

# Error codes that no retry will fix; the files wait for a config change.
PERMANENT_CODES = frozenset({
    "AccessDenied", "AllAccessDisabled", "NoSuchBucket", "InvalidAccessKeyId",
    "SignatureDoesNotMatch", "InvalidBucketName", "AccountProblem", "InvalidToken",
    "ExpiredToken", "KMS.NotFoundException", "KMS.DisabledException", "InvalidStorageClass",
})
HINTS = {
    "": "check CDH_S3_BUCKET, the keys and the bucket policy",
    "NoSuchBucket": "check CDH_S3_BUCKET (and CDH_S3_REGION / CDH_S3_ENDPOINT)",
    "AccessDenied": "the keys or role lack s3:PutObject / s3:GetObject on this bucket (and prefix)",
    "InvalidAccessKeyId": "wrong access key: check the cdh-s3 Secret (CDH_S3_ACCESS_KEY)",
    "SignatureDoesNotMatch": "wrong secret key: check the cdh-s3 Secret (CDH_S3_SECRET_KEY)",
    "NoCredentialsError": "no credentials: set the cdh-s3 Secret, or IRSA / Pod Identity / the node role",
    "EndpointConnectionError": "cannot connect: check CDH_S3_ENDPOINT, network policies and proxies",
    "ConnectTimeoutError": "no answer: check CDH_S3_ENDPOINT, network policies and proxies",
    "TimeoutError": "no answer: check CDH_S3_ENDPOINT, network policies and proxies",
}


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


def is_permanent(err: BaseException) -> bool:
    from botocore.exceptions import NoCredentialsError, PartialCredentialsError

    if isinstance(err, NoCredentialsError | PartialCredentialsError):
        return True
    code = error_code(err)
    # A HEAD answers 403/404 without a body, so botocore has only the status as code.
    return code in PERMANENT_CODES or (code == "403" and http_status(err) == 403)
