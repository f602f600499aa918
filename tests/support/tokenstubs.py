"""Loopback stand-ins for the token services the clouds' credential chains call, so a test runs the
real chains (azure-identity, google-auth) end to end without a cloud, and never reaches a real one:

- Microsoft Entra's token endpoint (AKS/ARO Workload Identity, service principals):
  ``POST /<tenant>/oauth2/v2.0/token``, over TLS (azure-identity accepts only https authorities):
  point ``AZURE_AUTHORITY_HOST`` at :attr:`TokenStubs.https_url` and trust :attr:`TokenStubs.ca`.
- Azure's instance metadata service (managed identity): ``GET /metadata/identity/oauth2/token`` with
  ``Metadata: true``; ``AZURE_POD_IDENTITY_AUTHORITY_HOST`` points azure-identity at it.
- The GCE/GKE metadata server (GKE Workload Identity): ``GCE_METADATA_HOST`` / ``GCE_METADATA_IP``.
- Google's OAuth token endpoint for service account keys (``POST /token``, a JWT bearer grant whose
  signature is checked with the key's public half): a key file's ``token_uri``.

Entra and IMDS tokens are JWTs that Azurite's ``--oauth basic`` accepts (audience Storage, issuer
sts.windows.net/<tenant>/). Every request is recorded in :attr:`TokenStubs.seen` as (service, form or
query), so a test asserts the grant the chain sent. It serves on its own event loop in a thread.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import threading
import time
import urllib.parse
from pathlib import Path

from aiohttp import web

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
GKE_TOKEN = "ya29.gke-workload-identity"


def fake_jwt(audience: str = "https://storage.azure.com", tenant: str = TENANT,
             lifetime_s: int = 3600) -> str:
    now = int(time.time())

    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return ".".join([part({"alg": "RS256", "typ": "JWT"}),
                     part({"aud": audience, "iss": f"https://sts.windows.net/{tenant}/", "nbf": now - 60,
                           "iat": now - 60, "exp": now + lifetime_s,
                           "oid": "00000000-0000-0000-0000-0000c0de"}),
                     "c2ln"])


def service_account_key(path: Path, email: str, token_uri: str) -> dict:
    """Write a service account key file (a fresh RSA key) whose token_uri is the stub; its JSON."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    info = {"type": "service_account", "project_id": "test-project", "private_key_id": "k1",
            "private_key": pem, "client_email": email, "client_id": "1", "token_uri": token_uri}
    path.write_text(json.dumps(info))
    return info


class TokenStubs:
    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        """``tls``: (certificate, key) for the https site (Entra); the certificate is its own CA (``ca``)."""
        self.ca, self._key = tls or (None, None)
        self.seen: list[tuple[str, dict]] = []
        self.google_tokens: dict[str, str] = {}   # client_email -> the access token to give it
        self.public_keys: dict[str, object] = {}  # client_email -> its key's public half (to verify)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="tokenstubs")
        self._runner: web.AppRunner | None = None
        self.http_port = self.https_port = 0

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def __enter__(self) -> TokenStubs:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)  # type: ignore[union-attr]
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def add_service_account(self, key_file: Path, email: str, token: str) -> None:
        """A key file for ``email``; the stub answers its grant with ``token``."""
        from cryptography.hazmat.primitives import serialization

        info = service_account_key(key_file, email, f"{self.http_url}/token")
        self.google_tokens[email] = token
        self.public_keys[email] = serialization.load_pem_private_key(
            info["private_key"].encode(), None).public_key()

    def requests(self, service: str) -> list[dict]:
        return [details for name, details in self.seen if name == service]

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._gce_ping)
        app.router.add_get("/computeMetadata/v1/instance/service-accounts/default/token", self._gce_token)
        app.router.add_get("/computeMetadata/v1/instance/service-accounts/default/", self._gce_account)
        app.router.add_get("/computeMetadata/v1/project/project-id", self._gce_project)
        app.router.add_post("/token", self._google_token)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._entra_token)
        app.router.add_get("/metadata/identity/oauth2/token", self._imds_token)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        plain = web.TCPSite(self._runner, "127.0.0.1", 0)
        await plain.start()
        self.http_port = plain._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        if self.ca is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.ca, self._key)
            secure = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context)
            await secure.start()
            self.https_port = secure._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    # ---------------------------------------------------------------- Google

    @staticmethod
    def _google(r: web.Request) -> bool:
        return r.headers.get("Metadata-Flavor") == "Google"

    async def _gce_ping(self, r: web.Request) -> web.Response:
        return web.Response(text="ok", headers={"Metadata-Flavor": "Google"})

    async def _gce_token(self, r: web.Request) -> web.Response:
        self.seen.append(("gce-token", dict(r.query)))
        if not self._google(r):
            return web.Response(status=403)
        return web.json_response({"access_token": GKE_TOKEN, "expires_in": 3599, "token_type": "Bearer"},
                                 headers={"Metadata-Flavor": "Google"})

    async def _gce_account(self, r: web.Request) -> web.Response:
        return web.json_response({"aliases": ["default"], "email": "cdh@test-project.iam.gserviceaccount.com",
                                  "scopes": ["https://www.googleapis.com/auth/cloud-platform"]},
                                 headers={"Metadata-Flavor": "Google"})

    async def _gce_project(self, r: web.Request) -> web.Response:
        return web.Response(text="test-project", headers={"Metadata-Flavor": "Google"})

    async def _google_token(self, r: web.Request) -> web.Response:
        form = dict(urllib.parse.parse_qsl(await r.text()))
        self.seen.append(("google-token", form))
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or "assertion" not in form:
            return web.json_response({"error": "invalid_grant"}, status=400)
        email = self._verified_issuer(form["assertion"])
        if email is None:
            return web.json_response({"error": "invalid_grant", "error_description": "bad signature"},
                                     status=400)
        return web.json_response({"access_token": self.google_tokens[email], "expires_in": 3599,
                                  "token_type": "Bearer"})

    def _verified_issuer(self, assertion: str) -> str | None:
        """The assertion's issuer if its RS256 signature is that service account's."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        head, claims, signature = assertion.split(".")
        email = json.loads(_unb64(claims)).get("iss", "")
        key = self.public_keys.get(email)
        if key is None:
            return None
        try:
            key.verify(_unb64(signature), f"{head}.{claims}".encode(), padding.PKCS1v15(),  # type: ignore[attr-defined]
                       hashes.SHA256())
        except InvalidSignature:
            return None
        return email

    # ---------------------------------------------------------------- Azure

    async def _entra_token(self, r: web.Request) -> web.Response:
        form = dict(urllib.parse.parse_qsl(await r.text()))
        self.seen.append(("entra-token", {**form, "tenant": r.match_info["tenant"]}))
        if form.get("grant_type") != "client_credentials" or "storage.azure.com" not in form.get("scope", ""):
            return web.json_response({"error": "invalid_request"}, status=400)
        return web.json_response({"access_token": fake_jwt(tenant=r.match_info["tenant"]), "expires_in": 3600,
                                  "ext_expires_in": 3600, "token_type": "Bearer"})

    async def _imds_token(self, r: web.Request) -> web.Response:
        self.seen.append(("imds-token", dict(r.query)))
        if r.headers.get("Metadata") != "true":
            return web.json_response({"error": "bad_request"}, status=400)
        return web.json_response({"access_token": fake_jwt(), "expires_on": str(int(time.time()) + 3600),
                                  "expires_in": "3600", "resource": r.query.get("resource", ""),
                                  "token_type": "Bearer"})


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
