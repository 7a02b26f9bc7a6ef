"""The clouds' token endpoints as local HTTPS fixtures that verify, with PyJWT, what each cloud documents.

No cloud is reachable from here, so each fixture plays one: configured with what the cloud would be
configured with (an Entra app's federated identity credentials, an AWS IAM OIDC provider and a role's
trust policy, a GCP workload identity pool provider), it checks the third-party JWT the way that
cloud documents: the issuer's discovery document ``{iss}/.well-known/openid-configuration`` fetched
over HTTPS (trusting the test CA only), its ``jwks_uri`` fetched over HTTPS, the RS256 signature, and
iss/sub/aud/exp/nbf/iat, and answers in the cloud's own format, errors included. None of it uses
credo's code: the verifier is PyJWT (credo mints with joserfc), the transport the standard library.

- ``EntraFixture``: ``POST /{tenant}/oauth2/v2.0/token`` (client credentials with a
  client_assertion, RFC 7523 §2.2), plus tenant discovery ``GET /{tenant}/v2.0/.well-known/
  openid-configuration`` and instance discovery ``GET /common/discovery/instance`` for MSAL.
- ``AwsStsFixture``: the STS Query API ``AssumeRoleWithWebIdentity`` (Version 2011-06-15), XML.
- ``GcpFixture``: STS ``POST /v1/token`` (RFC 8693) and IAM Credentials ``POST /v1/projects/-/
  serviceAccounts/{email}:generateAccessToken`` (service account impersonation).
- ``StaticIssuerHost``: a plain HTTPS file server for a directory, e.g. what ``credo oidc publish
  --out DIR`` writes, for issuers whose documents are hosted outside credo.

Each fixture records what it was asked and what it answered (``.exchanges``), for assertions; the
presented JWT is kept out of reprs. ``CloudFixtures`` starts all four on one test CA and gives the
environment a worker passes to its jobs (``worker_environment()``).

Sources for what is checked and answered are in docs/oidc.md, "Testing against the clouds'
documented behaviour"; the Entra error codes are those of ../shared/reference/workload-identity.md §1.6.
"""

from __future__ import annotations

import base64
import datetime as dt
import fnmatch
import hashlib
import json
import mimetypes
import re
import secrets
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote
from xml.sax.saxutils import escape

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.tls import HttpsServer, Request, Response, TestCA

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
TOKEN_TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt"
TOKEN_TYPE_ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
TOKEN_TYPE_ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
MAX_ASSERTION = 16 * 1024  # no cloud documents a smaller bound; a JWT of ours is about 1 KiB


def _now() -> int:
    return int(time.time())


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- What every cloud does with a third-party JWT -------------------------------------------------


class Rejected(Exception):
    """The verifier's reason to refuse a token; each fixture turns ``kind`` into its cloud's error."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind  # malformed, discovery, issuer_mismatch, jwks, key_not_found, key_use,
        #                   signature, expired, not_yet_valid, issued_in_future, missing_claim
        self.detail = detail


@dataclass
class OidcVerifier:
    """Discovery and JWKS over HTTPS from the token's own ``iss``, then PyJWT's signature and time checks.

    ``jwks_cache_seconds``: 0 fetches discovery and JWKS for every token (the default: what a test of
    a freshly published key wants). A positive value keeps them that long and does *not* refetch on
    an unknown ``kid``, like a cloud that cached an older JWKS: a rotation test with it proves that
    the next key was published before its first use. ``leeway``: clock skew allowed on exp/nbf/iat.
    """

    ca: TestCA
    algorithms: tuple[str, ...] = ("RS256",)
    leeway: int = 300
    jwks_cache_seconds: float = 0.0
    require_key_use_sig: bool = False
    fetches: list[str] = field(default_factory=list)  # the URLs it fetched, in order
    _cache: dict[str, tuple[float, dict[str, dict[str, Any]]]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @staticmethod
    def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        if len(token) > MAX_ASSERTION:
            raise Rejected("malformed", "the token is larger than 16 KiB")
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError as exc:
            raise Rejected("malformed", f"not a JWS compact JWT ({exc})") from None
        return header, claims

    def _get_json(self, url: str) -> Any:
        if not url.startswith("https://"):
            raise Rejected("discovery", f"{url} is not an https URL")
        self.fetches.append(url)
        try:
            with urllib.request.urlopen(url, context=self.ca.client_context(), timeout=5) as answer:
                return json.loads(answer.read(1 << 20))
        except urllib.error.HTTPError as exc:
            raise Rejected("discovery", f"GET {url}: HTTP {exc.code}") from None
        except (OSError, ValueError, ssl.SSLError) as exc:
            raise Rejected("discovery", f"GET {url}: {exc}") from None

    def keys(self, issuer: str) -> dict[str, dict[str, Any]]:
        """The issuer's JWKS by kid, found the way OIDC Discovery 1.0 §4 says (issuer + /.well-known/...)."""
        with self._lock:
            cached = self._cache.get(issuer)
            if (
                cached
                and self.jwks_cache_seconds > 0
                and time.monotonic() - cached[0] < self.jwks_cache_seconds
            ):
                return cached[1]
        config = self._get_json(issuer + "/.well-known/openid-configuration")
        if not isinstance(config, dict):
            raise Rejected("discovery", "the discovery document is not a JSON object")
        # OIDC Discovery 1.0 §4.3: the issuer in the document must be identical to the one used to find it.
        if config.get("issuer") != issuer:
            raise Rejected(
                "issuer_mismatch", f"discovery says issuer {config.get('issuer')!r}, the token {issuer!r}"
            )
        jwks_uri = config.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise Rejected("discovery", "the discovery document has no jwks_uri")
        document = self._get_json(jwks_uri)
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list):
            raise Rejected("jwks", f"{jwks_uri} is not a JWK Set")
        by_kid = {
            key["kid"]: key for key in keys if isinstance(key, dict) and isinstance(key.get("kid"), str)
        }
        with self._lock:
            self._cache[issuer] = (time.monotonic(), by_kid)
        return by_kid

    def verify(
        self, token: str, *, issuer: str, audience: str | Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Claims of ``token`` once its signature (key from ``issuer``'s JWKS) and times check out."""
        header, _ = self.unverified(token)
        if header.get("alg") not in self.algorithms:
            raise Rejected("signature", f"alg {header.get('alg')!r} is not one of {list(self.algorithms)}")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Rejected("key_not_found", "the token's header has no kid")
        jwk = self.keys(issuer).get(kid)
        if jwk is None:
            raise Rejected("key_not_found", f"kid {kid!r} is not in the issuer's JWKS")
        if self.require_key_use_sig and jwk.get("use") != "sig":
            raise Rejected("key_use", f"the JWKS key {kid!r} has use {jwk.get('use')!r}, not 'sig'")
        try:
            key = jwt.PyJWK.from_dict(jwk)
        except jwt.PyJWKError as exc:
            raise Rejected("jwks", f"the JWKS key {kid!r} is unusable ({exc})") from None
        try:
            return jwt.decode(
                token,
                key,
                algorithms=list(self.algorithms),
                issuer=issuer,
                audience=audience,
                leeway=self.leeway,
                options={"require": ["iss", "sub", "aud", "exp", "iat"], "verify_aud": audience is not None},
            )
        except jwt.InvalidSignatureError:
            raise Rejected("signature", "the signature does not verify with the JWKS key") from None
        except jwt.ExpiredSignatureError:
            raise Rejected("expired", "the token has expired") from None
        except jwt.ImmatureSignatureError as exc:
            kind = "issued_in_future" if "iat" in str(exc) else "not_yet_valid"
            raise Rejected(kind, str(exc)) from None
        except jwt.MissingRequiredClaimError as exc:
            raise Rejected("missing_claim", str(exc)) from None
        except jwt.InvalidTokenError as exc:
            raise Rejected("malformed", str(exc)) from None


@dataclass
class Exchange:
    """One request a fixture handled: what came in, what it concluded, what it answered."""

    cloud: str
    path: str
    params: dict[str, str] = field(repr=False)  # the request's parameters, assertion included
    status: int = 0
    error: str | None = None  # the cloud's error code (AADSTS700213, InvalidIdentityToken, invalid_grant)
    claims: dict[str, Any] | None = None  # the verified claims, when the token verified
    issued: str | None = field(default=None, repr=False)  # the token the fixture gave back
    at: float = field(default_factory=time.time)  # when the request came in (time.time())

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class _Fixture:
    cloud = "?"

    def __init__(self, ca: TestCA, verifier: OidcVerifier | None = None) -> None:
        self.ca = ca
        self.verifier = verifier or OidcVerifier(ca)
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        # The fixture's own signing key, for the access tokens it hands out (opaque to the SDKs).
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        # Every request answered, refused ones included (path, status, time.time()): a client that
        # retries (botocore does on some STS errors) and then succeeds leaves its refusals here.
        self.answered: list[tuple[str, int, float]] = []
        self._server = HttpsServer(ca, self._answer, self.cloud)

    @property
    def url(self) -> str:
        return self._server.url

    def _record(self, exchange: Exchange) -> None:
        with self._lock:
            self.exchanges.append(exchange)

    def _answer(self, request: Request) -> Response:
        try:
            response = self._dispatch(request)
        except Exception:
            with self._lock:
                self.answered.append((request.path, 500, time.time()))
            raise
        with self._lock:
            self.answered.append((request.path, response.status, time.time()))
        return response

    def refused_since(self, index: int) -> list[tuple[str, int, float]]:
        """The requests answered with a status >= 400 after the first ``index`` ones."""
        with self._lock:
            return [a for a in self.answered[index:] if a[1] >= 400]

    def _dispatch(self, request: Request) -> Response:
        raise NotImplementedError

    def close(self) -> None:
        self._server.close()

    def successful(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.ok]


# --- Microsoft Entra ID ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FederatedCredential:
    """Graph's federatedIdentityCredential: issuer, subject and one audience, matched exactly."""

    issuer: str
    subject: str
    audience: str = "api://AzureADTokenExchange"
    name: str = "credo"


@dataclass
class EntraApp:
    """An app registration: its client id, home tenant, federated credentials, where it is consented.

    ``tenants``: the tenants with a service principal for it (home tenant, plus those whose admin
    consented); ``roles``: the app roles granted per resource (what lands in the token's ``roles``).
    """

    client_id: str
    home_tenant: str
    federated_credentials: list[FederatedCredential] = field(default_factory=list)
    tenants: set[str] = field(default_factory=set)
    roles: dict[str, list[str]] = field(default_factory=dict)
    object_ids: dict[str, str] = field(default_factory=dict)  # service principal per tenant

    def __post_init__(self) -> None:
        self.tenants.add(self.home_tenant)
        for tenant in self.tenants:
            self.object_ids.setdefault(tenant, str(uuid.uuid4()))


class EntraError(Exception):
    def __init__(self, error: str, code: int, text: str, status: int = 400) -> None:
        super().__init__(f"AADSTS{code}: {text}")
        self.error, self.code, self.text, self.status = error, code, text, status


_FIC_HINT = " Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation"


class EntraFixture(_Fixture):
    """Microsoft identity platform v2.0 token endpoint for the client credentials grant with a federated
    client assertion. Point azure-identity at it with ``AZURE_AUTHORITY_HOST=fixture.authority_host``.

    Checked, in this order (errors as Entra returns them: HTTP 400, JSON with error,
    error_description "AADSTSnnnn: ...", error_codes, timestamp, trace_id, correlation_id, error_uri):
    the tenant exists (90002); the form has grant_type=client_credentials (70003), client_id,
    client_assertion_type = jwt-bearer and a client_assertion (900144 when missing, 7000216 for another
    assertion type); scope is exactly one ``{resource}/.default`` (70011, 1002012) of a known resource
    (500011); the app has a service principal in that tenant, i.e. consent was given (700016); a
    federated credential of the app matches the assertion's iss, sub and aud exactly and
    case-sensitively (70021 when the app has none, else 700211 issuer, 700213 subject, 700212
    audience); discovery and JWKS from ``iss`` over HTTPS (50166 when they cannot be fetched); RS256
    signature with the key of the header's kid, whose JWK must say ``use: sig`` (700027); exp, nbf and
    iat within 5 minutes of skew (700024).
    """

    cloud = "entra"
    resources = ("https://graph.microsoft.com", "https://management.azure.com", "https://vault.azure.net")

    def __init__(self, ca: TestCA, verifier: OidcVerifier | None = None) -> None:
        super().__init__(ca, verifier or OidcVerifier(ca, require_key_use_sig=True))
        self.tenants: set[str] = set()
        self.apps: dict[str, EntraApp] = {}

    @property
    def authority_host(self) -> str:
        return self.url

    def add_tenant(self, tenant_id: str) -> None:
        self.tenants.add(tenant_id)

    def add_app(self, app: EntraApp) -> EntraApp:
        self.tenants.update(app.tenants)
        self.apps[app.client_id] = app
        return app

    def token_url(self, tenant_id: str) -> str:
        return f"{self.url}/{tenant_id}/oauth2/v2.0/token"

    # Requests ----------------------------------------------------------------------------------

    def _dispatch(self, request: Request) -> Response:
        parts = [unquote(p) for p in request.path.strip("/").split("/")]
        if request.method == "POST" and len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"]:
            return self._token(parts[0], request)
        if request.method == "GET" and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            return self._tenant_discovery(parts[0])
        if request.method == "GET" and parts == ["common", "discovery", "instance"]:
            return self._instance_discovery(request)
        if request.method == "GET" and parts[1:] == ["discovery", "v2.0", "keys"]:
            return Response.json(200, {"keys": [self._own_jwk()]})
        return Response.json(404, {"error": "not_found", "error_description": f"no route {request.path}"})

    def _tenant_discovery(self, tenant: str) -> Response:
        """What MSAL's tenant discovery reads (authorization and token endpoints, issuer)."""
        if tenant not in self.tenants and tenant not in ("common", "organizations"):
            return self._error(EntraError("invalid_tenant", 90002, f"Tenant '{tenant}' not found."))
        base = f"{self.url}/{tenant}"
        return Response.json(
            200,
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "issuer": f"{self.url}/{tenant}/v2.0",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "tenant_region_scope": "EU",
            },
        )

    def _instance_discovery(self, request: Request) -> Response:
        """MSAL's instance discovery, for clients given this URL as ``instance_discovery``."""
        authorize = request.query.get("authorization_endpoint", [""])[-1]
        match = re.match(re.escape(self.url) + r"/([^/]+)/", authorize)
        tenant = match.group(1) if match else "common"
        host = self.url.removeprefix("https://")
        return Response.json(
            200,
            {
                "tenant_discovery_endpoint": f"{self.url}/{tenant}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
            },
        )

    def _error(self, error: EntraError) -> Response:
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        now = dt.datetime.now(dt.UTC)
        return Response.json(
            error.status,
            {
                "error": error.error,
                "error_description": f"AADSTS{error.code}: {error.text} Trace ID: {trace} Correlation ID: "
                f"{correlation} Timestamp: {now:%Y-%m-%d %H:%M:%SZ}",
                "error_codes": [error.code],
                "timestamp": f"{now:%Y-%m-%d %H:%M:%SZ}",
                "trace_id": trace,
                "correlation_id": correlation,
                "error_uri": f"{self.url}/error?code={error.code}",
            },
        )

    def _token(self, tenant: str, request: Request) -> Response:
        form = request.form()
        exchange = Exchange(self.cloud, request.path, form)
        try:
            exchange.claims, body = self._exchange(tenant, form)
            exchange.status = 200
            exchange.issued = body["access_token"]
            response = Response.json(200, body)
        except EntraError as error:
            exchange.status, exchange.error = error.status, f"AADSTS{error.code}"
            response = self._error(error)
        self._record(exchange)
        return response

    def _exchange(self, tenant: str, form: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
        if tenant not in self.tenants:
            raise EntraError(
                "invalid_tenant",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.",
            )
        for name in ("grant_type", "client_id", "scope", "client_assertion_type", "client_assertion"):
            if not form.get(name):
                raise EntraError(
                    "invalid_request",
                    900144,
                    f"The request body must contain the following parameter: '{name}'.",
                )
        if form["grant_type"] != "client_credentials":
            raise EntraError("unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
        if form["client_assertion_type"] != JWT_BEARER:
            raise EntraError(
                "invalid_request",
                7000216,
                "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
            )
        scopes = form["scope"].split()
        if len(scopes) != 1:
            raise EntraError(
                "invalid_scope",
                70011,
                f"The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {form['scope']} is not valid.",
            )
        if not scopes[0].endswith("/.default"):
            raise EntraError(
                "invalid_scope",
                1002012,
                f"The provided value for scope {scopes[0]} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
            )
        resource = scopes[0].removesuffix("/.default")
        if resource not in self.resources:
            raise EntraError(
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
            )
        client_id = form["client_id"]
        app = self.apps.get(client_id)
        if app is None or tenant not in app.tenants:
            raise EntraError(
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
            )

        assertion = form["client_assertion"]
        try:
            _, unverified = self.verifier.unverified(assertion)
        except Rejected as exc:
            raise EntraError(
                "invalid_client", 50027, f"JWT token is invalid or malformed. {exc.detail}"
            ) from None
        iss, sub, aud = unverified.get("iss"), unverified.get("sub"), unverified.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        fics = app.federated_credentials
        if not fics:
            raise EntraError(
                "invalid_client",
                70021,
                f"No matching federated identity record found for presented assertion. Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: '{aud}'."
                + _FIC_HINT,
            )
        # Exact, case-sensitive comparison of strings (no trailing-slash or case folding), §1.3.
        by_issuer = [f for f in fics if f.issuer == iss]
        if not by_issuer:
            raise EntraError(
                "invalid_client",
                700211,
                f"No matching federated identity record found for presented assertion issuer '{iss}'."
                + _FIC_HINT,
            )
        by_subject = [f for f in by_issuer if f.subject == sub]
        if not by_subject:
            raise EntraError(
                "invalid_client",
                700213,
                f"No matching federated identity record found for presented assertion subject '{sub}'."
                + _FIC_HINT,
            )
        matched = [f for f in by_subject if f.audience in audiences]
        if not matched:
            raise EntraError(
                "invalid_client",
                700212,
                f"No matching federated identity record found for presented assertion audience '{aud}'."
                + _FIC_HINT,
            )
        assert isinstance(iss, str)
        try:
            claims = self.verifier.verify(assertion, issuer=iss, audience=matched[0].audience)
        except Rejected as exc:
            if exc.kind in ("discovery", "issuer_mismatch", "jwks"):
                raise EntraError(
                    "invalid_client", 50166, f"Request to External OIDC endpoint failed. {exc.detail}"
                ) from None
            if exc.kind in ("key_not_found", "key_use", "signature"):
                raise EntraError(
                    "invalid_client",
                    700027,
                    f"Client assertion failed signature validation. [Reason - {exc.detail}]",
                ) from None
            if exc.kind in ("expired", "not_yet_valid", "issued_in_future"):
                raise EntraError(
                    "invalid_client",
                    700024,
                    f"Client assertion is not within its valid time range. Current time: {_iso(time.time())}, assertion valid from {_iso(unverified.get('nbf') or unverified.get('iat') or 0)}, expiry time of assertion {_iso(unverified.get('exp') or 0)}. [{exc.detail}]",
                ) from None
            raise EntraError(
                "invalid_client", 50027, f"JWT token is invalid or malformed. {exc.detail}"
            ) from None
        now = _now()
        access = jwt.encode(
            {
                "aud": resource,
                "iss": f"https://sts.windows.net/{tenant}/",
                "iat": now,
                "nbf": now,
                "exp": now + 3599,
                "appid": client_id,
                "idtyp": "app",
                "oid": app.object_ids[tenant],
                "sub": app.object_ids[tenant],
                "tid": tenant,
                "roles": app.roles.get(resource, []),
                "ver": "1.0",
            },
            self._key,
            algorithm="RS256",
            headers={"kid": self._own_jwk()["kid"]},
        )
        return claims, {
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": access,
        }

    def _own_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        jwk.update(kid="entra-fixture", use="sig", alg="RS256")
        return jwk


# --- AWS STS ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AwsRole:
    """An IAM role trusting an IAM OIDC provider, with the trust policy's conditions on its keys.

    ``conditions``: ``{"StringEquals": {"<provider>:aud": "sts.amazonaws.com", "<provider>:sub":
    "credo:group:tier1"}}``; StringLike takes ``*`` and ``?`` wildcards; a list is any-of.
    """

    name: str
    account: str
    provider: str  # the IAM OIDC provider's URL without https:// (host[:port][/path])
    conditions: Mapping[str, Mapping[str, str | Sequence[str]]]
    max_session_duration: int = 3600

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account}:role/{self.name}"


class AwsError(Exception):
    def __init__(self, code: str, message: str, status: int = 400, sender: bool = True) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status, self.sender = code, message, status, sender


_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")


class AwsStsFixture(_Fixture):
    """AWS STS ``AssumeRoleWithWebIdentity`` (Query API, Version 2011-06-15). boto3 reaches it with
    ``AWS_ENDPOINT_URL_STS=fixture.url`` (and AWS_CA_BUNDLE).

    Checked: Action and Version; RoleArn, RoleSessionName (2-64 of ``[\\w+=,.@-]``), WebIdentityToken
    present and DurationSeconds in 900..the role's MaxSessionDuration (ValidationError); an IAM OIDC
    provider registered for the token's ``iss`` (InvalidIdentityToken "No OpenIDConnect provider
    found in your account for ..."); ``aud`` in the provider's client ID list (InvalidIdentityToken
    "Incorrect token audience"); discovery + JWKS over HTTPS (IDPCommunicationError when
    unreachable, InvalidIdentityToken when the key is not found or the signature fails); expiry
    (ExpiredTokenException); the role exists and its trust policy's conditions on
    ``<provider>:aud`` / ``<provider>:sub`` hold (AccessDenied, 403). The answer is the documented
    XML with Credentials, SubjectFromWebIdentityToken, AssumedRoleUser, Provider, Audience; errors
    are ErrorResponse XML with Type, Code, Message and RequestId.
    """

    cloud = "aws"
    namespace = "https://sts.amazonaws.com/doc/2011-06-15/"

    def __init__(
        self, ca: TestCA, account: str = "123456789012", verifier: OidcVerifier | None = None
    ) -> None:
        super().__init__(ca, verifier)
        self.account = account
        self.providers: dict[str, set[str]] = {}  # provider URL (no scheme) -> client IDs (audiences)
        self.roles: dict[str, AwsRole] = {}
        self.issued_keys: dict[str, str] = {}  # access key id -> assumed role ARN

    @property
    def endpoint_url(self) -> str:
        return self.url

    def add_oidc_provider(self, issuer: str, client_ids: Sequence[str] = ("sts.amazonaws.com",)) -> str:
        """``aws iam create-open-id-connect-provider --url ISSUER --client-id-list ...``; returns its key."""
        provider = issuer.removeprefix("https://").rstrip("/")
        self.providers[provider] = set(client_ids)
        return provider

    def add_role(
        self,
        name: str,
        provider: str,
        *,
        sub: str | Sequence[str],
        aud: str = "sts.amazonaws.com",
        like: bool = False,
    ) -> AwsRole:
        """A role whose trust policy lets ``provider``'s tokens with that ``sub`` (StringLike if ``like``) in."""
        operator = "StringLike" if like else "StringEquals"
        conditions: dict[str, dict[str, str | Sequence[str]]] = {"StringEquals": {f"{provider}:aud": aud}}
        conditions.setdefault(operator, {})[f"{provider}:sub"] = sub
        role = AwsRole(name=name, account=self.account, provider=provider, conditions=conditions)
        self.roles[role.arn] = role
        return role

    def _dispatch(self, request: Request) -> Response:
        if request.path != "/":
            return self._xml_error(AwsError("InvalidAction", f"Could not find operation for {request.path}"))
        params = request.form() if request.method == "POST" else {k: v[-1] for k, v in request.query.items()}
        exchange = Exchange(self.cloud, request.path, params)
        try:
            exchange.claims, body, exchange.issued = self._assume(params)
            exchange.status = 200
            response = Response(200, body.encode(), content_type="text/xml")
        except AwsError as error:
            exchange.status, exchange.error = error.status, error.code
            response = self._xml_error(error)
        self._record(exchange)
        return response

    def _xml_error(self, error: AwsError) -> Response:
        body = (
            f'<ErrorResponse xmlns="{self.namespace}">\n'
            f"  <Error>\n    <Type>{'Sender' if error.sender else 'Receiver'}</Type>\n"
            f"    <Code>{escape(error.code)}</Code>\n    <Message>{escape(error.message)}</Message>\n  </Error>\n"
            f"  <RequestId>{uuid.uuid4()}</RequestId>\n</ErrorResponse>\n"
        )
        return Response(error.status, body.encode(), content_type="text/xml")

    def _assume(self, params: Mapping[str, str]) -> tuple[dict[str, Any], str, str]:
        action = params.get("Action")
        if action != "AssumeRoleWithWebIdentity":
            raise AwsError(
                "InvalidAction", f"Could not find operation {action} for version {params.get('Version')}"
            )
        if params.get("Version") != "2011-06-15":
            raise AwsError(
                "InvalidAction", f"Could not find operation {action} for version {params.get('Version')}"
            )
        for name in ("RoleArn", "RoleSessionName", "WebIdentityToken"):
            if not params.get(name):
                raise AwsError("MissingParameter", f"The request must contain the parameter {name}")
        session = params["RoleSessionName"]
        if not _SESSION_NAME.fullmatch(session):
            raise AwsError(
                "ValidationError",
                f"1 validation error detected: Value '{session}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]* and length between 2 and 64",
            )
        role = self.roles.get(params["RoleArn"])
        duration = int(params.get("DurationSeconds") or 3600)
        if duration < 900:
            raise AwsError(
                "ValidationError",
                "1 validation error detected: Value at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900",
            )
        if role is not None and duration > role.max_session_duration:
            raise AwsError(
                "ValidationError",
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            )

        token = params["WebIdentityToken"]
        try:
            _, unverified = self.verifier.unverified(token)
        except Rejected as exc:
            raise AwsError(
                "InvalidIdentityToken", f"The ID Token provided is not a valid JWT. {exc.detail}"
            ) from None
        iss = unverified.get("iss")
        provider = (
            iss.removeprefix("https://") if isinstance(iss, str) and iss.startswith("https://") else None
        )
        if provider is None or provider not in self.providers:
            raise AwsError(
                "InvalidIdentityToken", f"No OpenIDConnect provider found in your account for {iss}"
            )
        aud = unverified.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        client_ids = self.providers[provider]
        if not any(a in client_ids for a in audiences):
            raise AwsError("InvalidIdentityToken", "Incorrect token audience")
        assert isinstance(iss, str)
        try:
            claims = self.verifier.verify(token, issuer=iss, audience=sorted(client_ids))
        except Rejected as exc:
            if exc.kind in ("discovery", "jwks"):
                raise AwsError(
                    "IDPCommunicationError",
                    f"Couldn't retrieve verification key from your identity provider, please reference AssumeRoleWithWebIdentity documentation for requirements. {exc.detail}",
                ) from None
            if exc.kind == "expired":
                raise AwsError(
                    "ExpiredTokenException",
                    f"Token expired: current date/time {_iso(time.time())} must be before the expiration date/time {_iso(unverified.get('exp') or 0)}",
                ) from None
            raise AwsError(
                "InvalidIdentityToken", f"The web identity token could not be validated: {exc.detail}"
            ) from None
        if role is None or role.provider != provider or not self._conditions_hold(role, claims):
            raise AwsError(
                "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity", status=403
            )

        now = time.time()
        key_id = "ASIA" + "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))
        secret = secrets.token_urlsafe(30)[:40]
        session_token = base64.b64encode(secrets.token_bytes(96)).decode()
        assumed_arn = f"arn:aws:sts::{role.account}:assumed-role/{role.name}/{session}"
        role_id = "AROA" + "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(17))
        self.issued_keys[key_id] = assumed_arn
        audience = next(a for a in audiences if a in client_ids)
        body = (
            f'<AssumeRoleWithWebIdentityResponse xmlns="{self.namespace}">\n'
            "  <AssumeRoleWithWebIdentityResult>\n"
            f"    <SubjectFromWebIdentityToken>{escape(str(claims['sub']))}</SubjectFromWebIdentityToken>\n"
            f"    <Audience>{escape(str(audience))}</Audience>\n"
            "    <AssumedRoleUser>\n"
            f"      <Arn>{escape(assumed_arn)}</Arn>\n"
            f"      <AssumedRoleId>{role_id}:{escape(session)}</AssumedRoleId>\n"
            "    </AssumedRoleUser>\n"
            "    <Credentials>\n"
            f"      <SessionToken>{session_token}</SessionToken>\n"
            f"      <SecretAccessKey>{secret}</SecretAccessKey>\n"
            f"      <Expiration>{_iso(now + duration)}</Expiration>\n"
            f"      <AccessKeyId>{key_id}</AccessKeyId>\n"
            "    </Credentials>\n"
            f"    <Provider>{escape(iss)}</Provider>\n"
            "  </AssumeRoleWithWebIdentityResult>\n"
            f"  <ResponseMetadata>\n    <RequestId>{uuid.uuid4()}</RequestId>\n  </ResponseMetadata>\n"
            "</AssumeRoleWithWebIdentityResponse>\n"
        )
        return claims, body, key_id

    @staticmethod
    def _conditions_hold(role: AwsRole, claims: Mapping[str, Any]) -> bool:
        """IAM condition operators StringEquals / StringLike on the provider's aud and sub keys."""
        for operator, tests in role.conditions.items():
            for key, expected in tests.items():
                provider, _, claim = key.rpartition(":")
                if provider != role.provider:
                    return False
                value = claims.get(claim)
                values = value if isinstance(value, list) else [value]
                wanted = [expected] if isinstance(expected, str) else list(expected)
                if operator == "StringEquals":
                    ok = any(v == w for v in values for w in wanted)
                elif operator == "StringLike":
                    ok = any(isinstance(v, str) and fnmatch.fnmatchcase(v, w) for v in values for w in wanted)
                else:
                    raise ValueError(f"condition operator {operator} is not modelled")
                if not ok:
                    return False
        return True


# --- Google Cloud: STS and IAM Credentials ---------------------------------------------------------


@dataclass
class GcpProvider:
    """A workload identity pool OIDC provider.

    ``allowed_audiences`` empty: the token's aud must be the provider's full canonical resource name,
    with or without ``https:``. ``attribute_condition``: a predicate over the token's claims standing
    for the provider's CEL condition (``condition_text`` documents it, e.g.
    ``assertion.sub.startsWith('credo:group:')``). Attribute mapping is Google's default for OIDC,
    ``google.subject = assertion.sub`` (at most 127 bytes).
    """

    project_number: str
    pool: str
    provider: str
    issuer_uri: str
    allowed_audiences: tuple[str, ...] = ()
    attribute_condition: Callable[[Mapping[str, Any]], bool] | None = None
    condition_text: str = ""

    @property
    def audience(self) -> str:
        """The STS ``audience`` parameter (and the external-account file's ``audience``)."""
        return (
            f"//iam.googleapis.com/projects/{self.project_number}/locations/global/"
            f"workloadIdentityPools/{self.pool}/providers/{self.provider}"
        )

    def principal(self, subject: str) -> str:
        return (
            f"principal://iam.googleapis.com/projects/{self.project_number}/locations/global/"
            f"workloadIdentityPools/{self.pool}/subject/{subject}"
        )


class GcpError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error, self.description, self.status = error, description, status


class GcpFixture(_Fixture):
    """Google STS ``POST /v1/token`` and IAM Credentials ``generateAccessToken`` on one HTTPS server.

    STS (RFC 8693 as Google documents it): grant_type token-exchange, requested_token_type
    access_token, subject_token_type jwt or id_token, scope present, audience = a configured
    provider's full resource name (invalid_request otherwise); the JWT's header has kid and alg
    RS256; iss = the provider's issuer URI; aud in allowed audiences (or the provider's name);
    discovery + JWKS over HTTPS and the signature; exp, iat in the past and exp < iat + 48 h
    (invalid_grant for each); google.subject = sub <= 127 bytes (invalid_grant); the attribute
    condition (unauthorized_client). Answer: access_token, issued_token_type, token_type Bearer,
    expires_in.

    generateAccessToken: ``Authorization: Bearer`` an STS token this fixture issued (401
    UNAUTHENTICATED otherwise), the service account exists and grants roles/iam.workloadIdentityUser
    to the federated principal (403 PERMISSION_DENIED otherwise), a JSON body with ``scope`` and a
    ``lifetime`` up to 3600s. Answer: accessToken, expireTime.
    """

    cloud = "gcp"

    def __init__(self, ca: TestCA, verifier: OidcVerifier | None = None) -> None:
        super().__init__(ca, verifier)
        self.providers: dict[str, GcpProvider] = {}
        self.service_accounts: dict[str, set[str]] = {}  # email -> principals granted workloadIdentityUser
        self._sts_tokens: dict[str, tuple[str, float]] = {}  # STS access token -> (principal, expiry)

    @property
    def token_url(self) -> str:
        return f"{self.url}/v1/token"

    def impersonation_url(self, email: str) -> str:
        return f"{self.url}/v1/projects/-/serviceAccounts/{email}:generateAccessToken"

    def add_provider(self, provider: GcpProvider) -> GcpProvider:
        self.providers[provider.audience] = provider
        return provider

    def add_service_account(self, email: str, principals: Sequence[str]) -> str:
        """``gcloud iam service-accounts add-iam-policy-binding EMAIL --role roles/iam.workloadIdentityUser``."""
        self.service_accounts[email] = set(principals)
        return email

    def _dispatch(self, request: Request) -> Response:
        if request.method == "POST" and request.path == "/v1/token":
            return self._sts(request)
        match = re.fullmatch(r"/v1/projects/-/serviceAccounts/([^/:]+):generateAccessToken", request.path)
        if request.method == "POST" and match:
            return self._generate(unquote(match.group(1)), request)
        return Response.json(
            404, {"error": {"code": 404, "message": f"no route {request.path}", "status": "NOT_FOUND"}}
        )

    def _sts(self, request: Request) -> Response:
        if request.headers.get("content-type", "").startswith("application/json"):
            document = request.json()
            params = {str(k): str(v) for k, v in document.items()} if isinstance(document, dict) else {}
            # The JSON form names fields in camelCase (grantType ...); the form body in snake_case.
            params = {re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), k): v for k, v in params.items()}
        else:
            params = request.form()
        exchange = Exchange(self.cloud, request.path, params)
        try:
            exchange.claims, body = self._exchange(params)
            exchange.status, exchange.issued = 200, body["access_token"]
            response = Response.json(200, body)
        except GcpError as error:
            exchange.status, exchange.error = error.status, error.error
            response = Response.json(
                error.status, {"error": error.error, "error_description": error.description}
            )
        self._record(exchange)
        return response

    def _exchange(self, params: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
        if params.get("grant_type") != TOKEN_EXCHANGE:
            raise GcpError(
                "unsupported_grant_type", f'Invalid value for "grant_type": {params.get("grant_type")!r}.'
            )
        if params.get("requested_token_type") != TOKEN_TYPE_ACCESS_TOKEN:
            raise GcpError("invalid_request", 'Invalid value for "requested_token_type".')
        if params.get("subject_token_type") not in (TOKEN_TYPE_JWT, TOKEN_TYPE_ID_TOKEN):
            raise GcpError("invalid_request", 'Invalid value for "subject_token_type".')
        if not params.get("subject_token"):
            raise GcpError("invalid_request", 'Missing required parameter: "subject_token".')
        if not params.get("scope"):
            raise GcpError(
                "invalid_request",
                'Missing required parameter: "scope". It is required when exchanging an external credential for a Google access token.',
            )
        provider = self.providers.get(params.get("audience", ""))
        if provider is None:
            raise GcpError(
                "invalid_request",
                'Invalid value for "audience". This value should be the full resource name of the Identity Provider. See https://cloud.google.com/iam/docs/reference/sts/rest/v1/TopLevel/token for the list of possible formats.',
            )
        token = params["subject_token"]
        try:
            header, unverified = self.verifier.unverified(token)
        except Rejected as exc:
            raise GcpError("invalid_grant", f"Unable to parse the ID Token. {exc.detail}") from None
        if not header.get("kid") or header.get("alg") not in ("RS256", "ES256"):
            raise GcpError("invalid_grant", "The ID Token's header must have a kid and alg RS256 or ES256.")
        iss = unverified.get("iss")
        if iss != provider.issuer_uri:
            raise GcpError(
                "invalid_grant",
                f"The issuer in ID Token {iss} does not match the expected ISSUER {provider.issuer_uri}.",
            )
        allowed = provider.allowed_audiences or (provider.audience, "https:" + provider.audience)
        aud = unverified.get("aud")
        if not any(a in allowed for a in (aud if isinstance(aud, list) else [aud])):
            raise GcpError(
                "invalid_grant", f"The audience in ID Token [{aud}] does not match the expected audience."
            )
        try:
            claims = self.verifier.verify(token, issuer=provider.issuer_uri, audience=list(allowed))
        except Rejected as exc:
            if exc.kind == "expired":
                raise GcpError("invalid_grant", "The ID Token has expired.") from None
            if exc.kind == "issued_in_future":
                raise GcpError("invalid_grant", "The ID Token's iat must be in the past.") from None
            if exc.kind in ("discovery", "issuer_mismatch", "jwks"):
                raise GcpError(
                    "invalid_grant",
                    f"Unable to fetch the issuer's OIDC discovery document or JWKS. {exc.detail}",
                ) from None
            raise GcpError("invalid_grant", f"Invalid ID Token: {exc.detail}") from None
        if int(claims["exp"]) - int(claims["iat"]) >= 48 * 3600:
            raise GcpError("invalid_grant", "The ID Token's exp must be less than 48 hours after its iat.")
        subject = str(claims["sub"])
        if len(subject.encode()) > 127:
            raise GcpError(
                "invalid_grant", "The size of mapped attribute google.subject exceeds the 127 bytes limit."
            )
        if provider.attribute_condition is not None and not provider.attribute_condition(claims):
            raise GcpError(
                "unauthorized_client", "The given credential is rejected by the attribute condition."
            )
        access = "ya29.fixture-sts." + secrets.token_urlsafe(32)
        self._sts_tokens[access] = (provider.principal(subject), time.time() + 3600)
        return claims, {
            "access_token": access,
            "issued_token_type": TOKEN_TYPE_ACCESS_TOKEN,
            "token_type": "Bearer",
            "expires_in": 3599,
        }

    def _generate(self, email: str, request: Request) -> Response:
        exchange = Exchange(self.cloud, request.path, {"service_account": email})
        authorization = request.headers.get("authorization", "")
        bearer = authorization.removeprefix("Bearer ") if authorization.startswith("Bearer ") else ""
        principal, expiry = self._sts_tokens.get(bearer, ("", 0.0))
        try:
            if not principal or expiry < time.time():
                raise GcpError(
                    "UNAUTHENTICATED",
                    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
                    401,
                )
            if principal not in self.service_accounts.get(email, set()):
                raise GcpError(
                    "PERMISSION_DENIED",
                    "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
                    403,
                )
            document = request.json()
            body: dict[str, Any] = document if isinstance(document, dict) else {}
            scope = body.get("scope")
            if not scope or not isinstance(scope, list):
                raise GcpError(
                    "INVALID_ARGUMENT", "Request contains an invalid argument: scope is required.", 400
                )
            lifetime = str(body.get("lifetime") or "3600s")
            match = re.fullmatch(r"(\d+)(?:\.\d+)?s", lifetime)
            if not match or not 1 <= int(match.group(1)) <= 3600:
                raise GcpError(
                    "INVALID_ARGUMENT", f"Invalid value at 'lifetime' ({lifetime}): at most 3600s.", 400
                )
        except GcpError as error:
            exchange.status, exchange.error = error.status, error.error
            self._record(exchange)
            return Response.json(
                error.status,
                {"error": {"code": error.status, "message": error.description, "status": error.error}},
            )
        access = "ya29.fixture-sa." + secrets.token_urlsafe(32)
        exchange.status, exchange.issued = 200, access
        exchange.claims = {"principal": principal, "scope": scope}
        self._record(exchange)
        return Response.json(
            200, {"accessToken": access, "expireTime": _iso(time.time() + int(match.group(1)))}
        )


# --- A static issuer host --------------------------------------------------------------------------


class StaticIssuerHost:
    """Serves ``directory`` read-only over HTTPS: a web server hosting what ``credo oidc publish --out``
    wrote. ``.well-known/openid-configuration`` (no extension) is served as application/json. Records
    the paths fetched (``.fetches``)."""

    def __init__(self, ca: TestCA, directory: Path) -> None:
        self.directory = directory.resolve()
        self.fetches: list[str] = []
        self._server = HttpsServer(ca, self._serve, "issuer-host")

    @property
    def url(self) -> str:
        return self._server.url

    def _serve(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response(405, b"", content_type="text/plain")
        self.fetches.append(request.path)
        path = (self.directory / unquote(request.path).lstrip("/")).resolve()
        if not path.is_relative_to(self.directory) or not path.is_file():
            return Response(404, b"not found\n", content_type="text/plain")
        if path.name == "openid-configuration" or path.suffix == ".json":
            content_type = "application/json"
        else:
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return Response(200, path.read_bytes(), content_type=content_type)

    def close(self) -> None:
        self._server.close()


# --- All of them -----------------------------------------------------------------------------------


class CloudFixtures:
    """The three clouds and a static issuer host on one test CA, started together; ``close()`` stops them.

    ``worker_environment()`` is what the integrator sets in a ``credo worker``'s environment so that
    it passes the endpoints on to its jobs (docs/oidc.md).
    """

    def __init__(self, directory: Path) -> None:
        self.ca = TestCA.create(directory / "tls")
        self.issuer_dir = directory / "issuer"
        self.issuer_dir.mkdir(parents=True, exist_ok=True)
        self.issuer_host = StaticIssuerHost(self.ca, self.issuer_dir)
        self.entra = EntraFixture(self.ca)
        self.aws = AwsStsFixture(self.ca)
        self.gcp = GcpFixture(self.ca)

    def worker_environment(self) -> dict[str, str]:
        return {
            "CREDO_AZURE_AUTHORITY_HOST": self.entra.authority_host,
            "AWS_ENDPOINT_URL_STS": self.aws.endpoint_url,
            "CREDO_GCP_STS_URL": self.gcp.token_url,
            "CREDO_GCP_IAM_URL": self.gcp.url,
            **self.ca.environment(),
        }

    def close(self) -> None:
        for fixture in (self.entra, self.aws, self.gcp, self.issuer_host):
            fixture.close()

    def __enter__(self) -> CloudFixtures:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def external_account_file(
    path: Path,
    *,
    audience: str,
    token_file: Path,
    token_url: str,
    impersonation_url: str | None = None,
) -> Path:
    """google-auth's ``external_account`` credential file with a file credential source (what
    ``gcloud iam workload-identity-pools create-cred-config ... --credential-source-file`` writes)."""
    document: dict[str, Any] = {
        "type": "external_account",
        "audience": audience,
        "subject_token_type": TOKEN_TYPE_JWT,
        "token_url": token_url,
        "credential_source": {"file": str(token_file)},
    }
    if impersonation_url:
        document["service_account_impersonation_url"] = impersonation_url
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 §3 JWK thumbprint (SHA-256) of an RSA key: the required members, sorted, no spaces."""
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode()).digest())


__all__ = [
    "AwsRole",
    "AwsStsFixture",
    "CloudFixtures",
    "EntraApp",
    "EntraFixture",
    "Exchange",
    "FederatedCredential",
    "GcpFixture",
    "GcpProvider",
    "OidcVerifier",
    "Rejected",
    "StaticIssuerHost",
    "external_account_file",
    "thumbprint",
]
