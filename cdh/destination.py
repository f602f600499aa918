"""Where zips go: a :class:`Destination` is a value that says everything needed to reach one bucket.

It is what a store (cdh/store/) is built from, never the global settings: so one agent can hold
several stores (one per route, each with its own credentials) and a reload can build new ones while
uploads on the old ones finish. Stdlib only, cheap to import.

Today one destination comes from the settings (:func:`from_settings`): the ``CDH_S3_*`` names
(and IBM's ``S3_*``) mean ``s3://``. The key prefix template (``CDH_S3_KEY_PREFIX``) follows the
destination's own literal prefix: key = prefix + rendered template + zip name (cdh/keys.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cdh.config import Settings

S3, GS, AZBLOB = "s3", "gs", "azblob"
KINDS = (S3, GS, AZBLOB)


@dataclass(frozen=True)
class S3Access:
    """How to reach an S3 bucket, and what every object written there carries."""

    endpoint: str | None = None      # None: AWS (botocore's endpoint for the region)
    region: str = ""                 # "": botocore's default chain
    addressing: str = "auto"         # bucket addressing style
    access_key: str = field(default="", repr=False)   # "": botocore's credential chain
    secret_key: str = field(default="", repr=False)
    session_token: str = field(default="", repr=False)
    ca_bundle: str = ""
    verify_tls: bool = True
    sse: str = "none"                # none | AES256 | aws:kms
    sse_kms_key_id: str = ""
    storage_class: str = ""


@dataclass(frozen=True)
class Destination:
    kind: str                        # one of KINDS
    bucket: str                      # bucket (s3, gs) or container (azblob)
    prefix: str = ""                 # literal key prefix: "" or ending in "/"
    key_template: str = ""           # CDH_S3_KEY_PREFIX, rendered per zip after ``prefix``
    s3: S3Access | None = None
    name: str = "main"               # which destination this is (the settings' one is "main")

    @property
    def key_prefix_template(self) -> str:
        """The whole template keys are rendered from (cdh/keys.py): literal prefix + template."""
        return self.prefix + self.key_template

    @property
    def endpoint(self) -> str | None:
        """The service URL when it is not the cloud's own (a custom S3 endpoint, an emulator)."""
        return self.s3.endpoint if self.s3 is not None else None

    def url(self, key: str = "") -> str:
        """``kind://bucket/key``: how cdh names an object (or, with no key, the bucket) in lines."""
        return f"{self.kind}://{self.bucket}/{key}"

    def object_url(self, key: str) -> str:
        """Where the object is, for people: the path-style URL on a custom endpoint, else :meth:`url`."""
        if self.endpoint:
            return f"{self.endpoint.rstrip('/')}/{self.bucket}/{quote(key)}"
        return self.url(key)

    def describe(self) -> str:
        """The destination in one line (never a credential)."""
        return self.url() + (f" at {self.endpoint}" if self.endpoint else "")


def from_settings(settings: Settings) -> Destination:
    """The destination the settings name (``CDH_S3_BUCKET`` and the other ``CDH_S3_*``)."""
    s = settings
    return Destination(
        kind=S3, bucket=s.s3_bucket, key_template=s.s3_key_prefix,
        s3=S3Access(endpoint=s.s3_endpoint, region=s.s3_region, addressing=s.s3_addressing,
                    access_key=s.s3_access_key, secret_key=s.s3_secret_key,
                    session_token=s.s3_session_token, ca_bundle=s.s3_ca_bundle,
                    verify_tls=s.s3_verify_tls, sse=s.s3_sse, sse_kms_key_id=s.s3_sse_kms_key_id,
                    storage_class=s.s3_storage_class))
