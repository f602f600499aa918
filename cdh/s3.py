"""The S3 client, built one way for the agent and the bucket tools (ls, get, doctor).

botocore does the hard parts: signing, retries with backoff (standard mode),
and the credential chain when no static keys are set (env, shared file, IRSA
web identity, EKS Pod Identity, instance role).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cdh.config import Settings


def client_config(settings: Settings, max_pool_connections: int = 10):
    from aiobotocore.config import AioConfig

    return AioConfig(
        # No SHA-256 of the payload: every upload carries a CRC32 the store verifies (see
        # cdh/agent/verify.py), which is what botocore itself does over HTTPS. Over plain HTTP
        # botocore would otherwise hash every byte (~2.5 CPU-seconds per GB here).
        s3={"addressing_style": settings.s3_addressing, "payload_signing_enabled": False},
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=10,
        read_timeout=120,
        max_pool_connections=max_pool_connections,
    )


def create_client(settings: Settings, max_pool_connections: int = 10):
    """An async context manager yielding an aiobotocore S3 client for ``settings``."""
    from aiobotocore.session import get_session

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
    return get_session().create_client("s3", **kwargs)
