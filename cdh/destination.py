"""Where zips go: a :class:`Destination` is a value that says everything needed to reach one bucket.

It is what a store (cdh/store/) is built from, never the global settings: so one agent can hold
several stores (one per route, each with its own credentials) and a reload can build new ones while
uploads on the old ones finish. Stdlib only, cheap to import.

:func:`from_settings` reads the one destination of the settings: ``CDH_DESTINATION``
(``s3://bucket[/prefix]``, ``gs://bucket[/prefix]``, ``azblob://container[/prefix]``), else
``CDH_S3_BUCKET`` (and IBM's ``S3_BUCKET_NAME``), which means ``s3://``. How each kind is reached
comes from its own settings (``CDH_S3_*``, ``CDH_AZURE_*``, ``CDH_GCS_*``, and the platforms' own
names for them: ``AZURE_STORAGE_ACCOUNT``, ``STORAGE_EMULATOR_HOST`` ...). The key prefix template
(``CDH_S3_KEY_PREFIX``) follows the destination's own literal prefix, for every kind: key = prefix +
rendered template + zip name (cdh/keys.py). A bad combination is one line naming the setting.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from cdh.config.values import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cdh.config import Settings

S3, GS, AZBLOB = "s3", "gs", "azblob"
KINDS = (S3, GS, AZBLOB)
GCS_ENDPOINT = "https://storage.googleapis.com"
AZURE_SUFFIX = "core.windows.net"
# Azurite's well-known development account and key (public, documented by Microsoft): what
# ``UseDevelopmentStorage=true`` means.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


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
class AzureAccess:
    """How to reach an Azure storage account's blob service, and with which credential."""

    account: str
    endpoint: str                    # the blob service URL (Azurite: path-style, the account in the path)
    account_key: str = field(default="", repr=False)  # Shared Key; else
    sas: str = field(default="", repr=False)          # a SAS token; else Entra ID tokens
    checksum: str = "crc64"          # per block: crc64 (x-ms-content-crc64) or md5 (Content-MD5)
    emulator: bool = False           # Azurite

    @property
    def credential(self) -> str:
        """Which credential is used, in words (never its value)."""
        return "account key" if self.account_key else "SAS" if self.sas else "Entra ID token"


@dataclass(frozen=True)
class GcsAccess:
    """How to reach Cloud Storage, and with which credential."""

    endpoint: str = GCS_ENDPOINT
    credentials_file: str = ""       # a key or external-account file; "": Application Default Credentials
    anonymous: bool = False          # an emulator: no credentials at all
    # A digest of what that file held when the settings were read: google-auth reads the file when the
    # store is built, so a new key in the same file (a rotated Secret) must make the destination differ
    # (cdh/agent/stores.py keeps the store of a destination a reload left equal).
    credentials_digest: str = field(default="", repr=False)

    @property
    def credential(self) -> str:
        if self.anonymous:
            return "none (emulator)"
        return f"file {self.credentials_file}" if self.credentials_file else "Application Default Credentials"


@dataclass(frozen=True)
class Destination:
    kind: str                        # one of KINDS
    bucket: str                      # bucket (s3, gs) or container (azblob)
    prefix: str = ""                 # literal key prefix: "" or ending in "/"
    key_template: str = ""           # CDH_S3_KEY_PREFIX, rendered per zip after ``prefix``
    key_layout: str = "listing"      # CDH_KEY_LAYOUT: the object's name after the rendered template
    s3: S3Access | None = None
    azure: AzureAccess | None = None
    gcs: GcsAccess | None = None
    name: str = "main"               # which destination this is (the settings' one is "main")

    @property
    def key_prefix_template(self) -> str:
        """The whole template keys are rendered from (cdh/keys.py): literal prefix + template."""
        return self.prefix + self.key_template

    @property
    def endpoint(self) -> str | None:
        """The service URL when it is not AWS's or Google's own (a custom S3 endpoint, an emulator); the
        blob service's URL on Azure (it names the account)."""
        if self.s3 is not None:
            return self.s3.endpoint
        if self.azure is not None:
            return self.azure.endpoint
        if self.gcs is not None and self.gcs.endpoint != GCS_ENDPOINT:
            return self.gcs.endpoint
        return None

    def url(self, key: str = "") -> str:
        """``kind://bucket/key``: how cdh names an object (or, with no key, the bucket) in lines."""
        return f"{self.kind}://{self.bucket}/{key}"

    def object_url(self, key: str) -> str:
        """Where the object is, for people: the blob's URL on Azure, the path-style URL on a custom S3
        endpoint, else :meth:`url`."""
        if self.kind != GS and self.endpoint:
            return f"{self.endpoint.rstrip('/')}/{self.bucket}/{quote(key)}"
        return self.url(key)

    def describe(self) -> str:
        """The destination in one line (never a credential)."""
        return self.url() + (f" at {self.endpoint}" if self.endpoint else "")


def configured(settings: Settings) -> bool:
    """Whether the settings name a main destination (CDH_DESTINATION, or CDH_S3_BUCKET meaning s3://)."""
    return bool(settings.destination or settings.s3_bucket)


def from_settings(settings: Settings) -> Destination:
    """The destination the settings name; ConfigError (one line) when they do not add up."""
    s = settings
    if not s.destination:
        return _s3(settings, s.s3_bucket, "")
    kind, _, rest = s.destination.partition("://")
    bucket, _, prefix = rest.partition("/")
    if s.s3_bucket and (kind, bucket) != (S3, s.s3_bucket):
        raise ConfigError(f"{s.env_name('destination')} and {s.env_name('s3_bucket')} name two destinations: "
                          "set one")
    if kind == S3:
        return _s3(settings, bucket, prefix)
    common = {"bucket": bucket, "prefix": prefix, "key_template": s.s3_key_prefix, "key_layout": s.key_layout}
    if kind == AZBLOB:
        return Destination(AZBLOB, **common, azure=azure_access(settings))
    return Destination(GS, **common, gcs=gcs_access(settings))


def _s3(settings: Settings, bucket: str, prefix: str) -> Destination:
    s = settings
    return Destination(
        kind=S3, bucket=bucket, prefix=prefix, key_template=s.s3_key_prefix, key_layout=s.key_layout,
        s3=S3Access(endpoint=s.s3_endpoint, region=s.s3_region, addressing=s.s3_addressing,
                    access_key=s.s3_access_key, secret_key=s.s3_secret_key,
                    session_token=s.s3_session_token, ca_bundle=s.s3_ca_bundle,
                    verify_tls=s.s3_verify_tls, sse=s.s3_sse, sse_kms_key_id=s.s3_sse_kms_key_id,
                    storage_class=s.s3_storage_class))


def gcs_access(settings: Settings) -> GcsAccess:
    s = settings
    if s.gcs_emulator_host:
        return GcsAccess(endpoint=s.gcs_emulator_host, anonymous=True)
    return GcsAccess(endpoint=s.gcs_endpoint or GCS_ENDPOINT, credentials_file=s.gcs_credentials_file,
                     credentials_digest=file_digest(s.gcs_credentials_file))


def file_digest(path: str | None) -> str:
    """SHA-256 of a file's bytes ("" when there is no path or no readable file: the store says why)."""
    import hashlib

    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except (OSError, ValueError):
        return ""


def azure_access(settings: Settings) -> AzureAccess:
    """Account, endpoint and credential of an azblob:// destination. First match: the connection
    string's key or SAS, CDH_AZURE_ACCOUNT_KEY, CDH_AZURE_SAS, else Entra ID tokens."""
    s = settings
    cs = parse_connection_string(s.azure_connection_string, s.env_name("azure_connection_string"))
    account = s.azure_account or cs.get("AccountName", "")
    if not account:
        raise ConfigError("an azblob:// destination needs a storage account: set CDH_AZURE_ACCOUNT "
                          "(or AZURE_STORAGE_ACCOUNT) or CDH_AZURE_CONNECTION_STRING")
    return azure_access_of(
        account=account, endpoint=s.azure_endpoint or cs.get("BlobEndpoint", ""),
        suffix=cs.get("EndpointSuffix", ""), protocol=cs.get("DefaultEndpointsProtocol", ""),
        key=cs.get("AccountKey") or s.azure_account_key,
        sas=cs.get("SharedAccessSignature") or s.azure_sas, checksum=s.azure_checksum,
        names={"account": s.env_name("azure_account"),
               "key": "the connection string's AccountKey" if cs.get("AccountKey")
               else s.env_name("azure_account_key")})


def azure_access_of(*, account: str, endpoint: str, suffix: str, protocol: str, key: str, sas: str,
                    checksum: str, names: dict[str, str]) -> AzureAccess:
    """An :class:`AzureAccess` from its parts (the settings', or a route's: cdh/routes.py), checked;
    ``names``: what to call the ``account`` and the ``key`` in a refusal (never their values)."""
    endpoint = endpoint.rstrip("/")
    emulator = account == AZURITE_ACCOUNT or _loopback(endpoint)
    if not emulator and not (3 <= len(account) <= 24 and account.isalnum() and account.islower()):
        raise ConfigError(f"{names['account']}={account!r} is not valid: 3-24 of a-z 0-9")
    if not endpoint:
        endpoint = f"{protocol or 'https'}://{account}.blob.{suffix or AZURE_SUFFIX}"
    if key:
        try:
            base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{names['key']}=<hidden> is not valid: a base64 account key") from None
    checksum = checksum if checksum != "auto" else "md5" if emulator else "crc64"
    return AzureAccess(account=account, endpoint=endpoint, account_key=key,
                       sas="" if key else sas.lstrip("?"), checksum=checksum, emulator=emulator)


def parse_connection_string(value: str, name: str) -> dict[str, str]:
    """An Azure Storage connection string as a dict; ``UseDevelopmentStorage=true`` is Azurite's."""
    if not value:
        return {}
    parts: dict[str, str] = {}
    for item in value.strip().strip(";").split(";"):
        k, eq, v = item.strip().partition("=")
        if not eq or not k:
            raise ConfigError(f"{name}=<hidden> is not valid: Key=Value pairs separated by ;")
        parts[k.strip()] = v.strip()
    if parts.get("UseDevelopmentStorage", "").lower() == "true":
        host = parts.get("DevelopmentStorageProxyUri", "http://127.0.0.1").rstrip("/")
        parts = {"AccountName": AZURITE_ACCOUNT, "AccountKey": AZURITE_KEY,
                 "BlobEndpoint": f"{host}:10000/{AZURITE_ACCOUNT}", **parts}
    return parts


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
