"""The issuer URL and the two documents clouds fetch from it: discovery and JWKS.

OpenID Connect Discovery 1.0 §4: the document lives at ``{issuer}/.well-known/openid-configuration``
and its ``issuer`` must equal the tokens' ``iss`` byte for byte (§4.3). Entra ID compares the
federated credential's issuer with ``iss`` exactly, so a trailing slash on one side only is
AADSTS700211 (../shared/reference/workload-identity.md §1.2, §1.6). credo therefore stores the
issuer exactly as the admin gave it, adds and removes nothing, and refuses a trailing slash
outright (one rule, no normalisation to guess about).

``publish(dir)`` writes both documents under ``dir/.well-known/`` (atomically, 0644) for hosting on
any HTTPS server or storage account when the server itself is not reachable from the clouds.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from credo.errors import EnvironmentProblem, InputError
from credo.files import write_text_atomically
from credo.oidc.keys import KeyStore

__all__ = [
    "CLAIMS_SUPPORTED",
    "DISCOVERY_PATH",
    "JWKS_PATH",
    "discovery",
    "issuer_warning",
    "jwks_uri",
    "publish",
    "validate_issuer",
]

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/.well-known/jwks.json"
CLAIMS_SUPPORTED = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "credo"]
_LOOPBACK_NAMES = {"localhost"}
_MAX_ISSUER = 600  # Entra's federated credential issuer limit (reference §1.3)


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_issuer(url: str) -> str:
    """Return ``url`` unchanged if it can be an issuer, else raise InputError (one line + hint).

    https only (the clouds fetch nothing else); http only for a loopback host, for tests
    (``issuer_warning`` says so). No query, fragment, user info or trailing slash.
    """
    hint_example = "e.g. --oidc-issuer https://credo.example.com or https://host/path (no trailing slash)"
    if not url or url != url.strip() or any(c.isspace() or ord(c) < 0x20 for c in url):
        raise InputError(f"invalid OIDC issuer {url!r}: empty or containing spaces", hint=hint_example)
    if len(url) > _MAX_ISSUER:
        raise InputError(f"OIDC issuer is {len(url)} characters; Entra allows {_MAX_ISSUER}")
    try:
        split = urlsplit(url)
        host = split.hostname or ""
        split.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise InputError(f"invalid OIDC issuer {url!r}: {exc}", hint=hint_example) from None
    if split.scheme == "http" and _is_loopback(host):
        pass
    elif split.scheme != "https":
        raise InputError(
            f"OIDC issuer {url!r} is not https",
            hint="Entra ID, AWS and GCP fetch the discovery document over HTTPS only: " + hint_example,
        )
    if not host:
        raise InputError(f"OIDC issuer {url!r} names no host", hint=hint_example)
    if split.username is not None or split.password is not None:
        raise InputError(f"OIDC issuer {url!r} carries user info", hint=hint_example)
    if split.query or split.fragment or url.endswith(("?", "#")):
        raise InputError(
            f"OIDC issuer {url!r} has a query or fragment", hint="OIDC Discovery §2: an issuer has neither"
        )
    if url.endswith("/"):
        raise InputError(
            f"OIDC issuer {url!r} ends with a slash",
            hint=f"use {url.rstrip('/')!r}: the tokens' iss must equal the federated credential's issuer "
            "byte for byte, and a slash on one side only is AADSTS700211",
        )
    return url


def issuer_warning(url: str) -> str | None:
    """A warning for an issuer the clouds cannot use (http on loopback: tests only)."""
    if urlsplit(url).scheme == "http":
        return f"OIDC issuer {url} is http on loopback: fine for tests, no cloud will accept it"
    return None


def jwks_uri(issuer: str) -> str:
    return issuer + JWKS_PATH


def discovery(issuer: str) -> dict[str, Any]:
    """The discovery document (contract §2; the minimal set Entra, AWS and GCP read)."""
    return {
        "issuer": issuer,
        "jwks_uri": jwks_uri(issuer),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": CLAIMS_SUPPORTED,
    }


def publish(directory: Path, issuer: str, store: KeyStore) -> list[Path]:
    """Write ``.well-known/openid-configuration`` and ``.well-known/jwks.json`` under ``directory``.

    Host ``directory`` at the issuer URL: the file ``.well-known/openid-configuration`` must be
    what ``{issuer}/.well-known/openid-configuration`` serves (as application/json).
    """
    validate_issuer(issuer)
    target = directory / ".well-known"
    hint = "choose an --out directory this user may write"
    try:
        target.mkdir(parents=True, exist_ok=True, mode=0o755)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot create {target}: {exc.strerror}", hint=hint) from None
    written = []
    for name, document in (("openid-configuration", discovery(issuer)), ("jwks.json", store.jwks())):
        written.append(
            write_text_atomically(target / name, json.dumps(document, indent=2) + "\n", mode=0o644, hint=hint)
        )
    return written
