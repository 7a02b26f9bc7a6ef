"""Minting the tokens jobs and services present to the clouds (contract §1).

A JWS compact token, RS256, header ``{"alg": "RS256", "kid": <thumbprint>, "typ": "JWT"}``;
claims ``iss`` (the issuer exactly as configured), ``sub`` (``group_subject``), ``aud`` (one
string: Entra's federated credentials take exactly one audience), ``exp``, ``nbf``, ``iat``,
``jti`` (RFC 7519 §4.1; Entra does not need nbf/iat/jti, they are cheap and some verifiers do),
and the private claim ``credo`` with the per-job (or per-service) facts for audit: subjects stay
coarse (20 federated credentials per app, no wildcards), the details travel here.

Signed with joserfc (../shared/reference/workload-identity.md §4: maintained, typed, safe
defaults); tests verify with PyJWT, independently.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from joserfc import jwt

from credo.automation.identity import (
    MAX_TOKEN_LIFETIME,
    MIN_TOKEN_LIFETIME,
    IssuedToken,
)
from credo.errors import InputError
from credo.oidc.keys import SigningKey

__all__ = ["JobClaims", "ServiceClaims", "mint", "validate_service_name"]

_ALGORITHMS = ["RS256"]
_SERVICE_RE = re.compile(r"^[A-Za-z0-9@._:\\-]{1,256}$")


@dataclass(frozen=True)
class JobClaims:
    """The ``credo`` claim of a job's token."""

    group: str
    job_id: str
    runbook: str
    runbook_sha256: str  # hex, without the "sha256:" prefix of content hashes
    worker: str  # the worker's computer account, NAME$@REALM
    gmsa_sid: str | None  # the gMSA the job runs as, as the worker reported it


@dataclass(frozen=True)
class ServiceClaims:
    """The ``credo`` claim of a service's token (the agent, for a systemd service)."""

    group: str
    host: str  # the host's computer account, NAME$@REALM
    service: str  # the unit name


def validate_service_name(name: str) -> str:
    if not _SERVICE_RE.match(name):
        raise InputError(
            f"invalid service name {name!r}",
            hint="a systemd unit name: 1-256 letters, digits, '@', '.', '_', ':', '\\' or '-'",
        )
    return name


def mint(
    key: SigningKey,
    *,
    issuer: str,
    subject: str,
    audience: str,
    lifetime: int,
    claims: JobClaims | ServiceClaims,
    now: datetime | None = None,
) -> IssuedToken:
    """Sign one token with ``key`` (the store's current key). The token never shows in a repr."""
    if not MIN_TOKEN_LIFETIME <= lifetime <= MAX_TOKEN_LIFETIME:
        raise InputError(f"token lifetime {lifetime} s is outside {MIN_TOKEN_LIFETIME}..{MAX_TOKEN_LIFETIME}")
    stamp = int((now or datetime.now(UTC)).timestamp())
    payload: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "exp": stamp + lifetime,
        "nbf": stamp,
        "iat": stamp,
        "jti": secrets.token_urlsafe(16),
        "credo": asdict(claims),
    }
    header = {"alg": "RS256", "kid": key.kid, "typ": "JWT"}
    token = jwt.encode(header, payload, key.key, algorithms=_ALGORITHMS)
    expires = datetime.fromtimestamp(stamp + lifetime, UTC)
    return IssuedToken(token=token, subject=subject, audience=audience, expires_at=expires)
