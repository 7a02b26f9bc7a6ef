"""Helpers for runbooks run by ``credo worker`` (importable as ``credo.runbook`` inside a job).

Standard library only: the worker copies this file next to the runbook, so it works under any
Python 3 the host has. Parameters arrive as a JSON file, never spliced into code::

    from credo import runbook
    p = runbook.params()                 # {"sam_account_name": "jdoe"}
    runbook.write_verbose("looking up " + p["sam_account_name"])
    runbook.write_warning("account was already disabled")
    runbook.write_progress("disabling", percent=50)
    print("done")                        # stdout is the output stream, stderr the error stream

In a job of a group with a workload identity, ``token()`` trades the job's federated token
(AZURE_FEDERATED_TOKEN_FILE) for an Entra ID access token of an app in any tenant that trusts it::

    graph = runbook.token(tenant_id="contoso.onmicrosoft.com", client_id="<app id>",
                          scope="https://graph.microsoft.com/.default")
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

__all__ = [
    "TokenError",
    "params",
    "token",
    "token_response",
    "write_debug",
    "write_error",
    "write_output",
    "write_progress",
    "write_verbose",
    "write_warning",
]

_stream_file: Any = None


def params() -> dict[str, Any]:
    """The job's parameters, from the JSON file named by CREDO_PARAMETERS ({} outside a job)."""
    path = os.environ.get("CREDO_PARAMETERS")
    if not path:
        return {}
    with open(path, encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


def _write(stream: str, text: str) -> None:
    global _stream_file
    fd = os.environ.get("CREDO_STREAM_FD")
    if fd is None:  # not under a worker: show it on stderr
        print(f"{stream.upper()}: {text}", file=sys.stderr, flush=True)
        return
    if _stream_file is None:
        _stream_file = os.fdopen(int(fd), "w", encoding="utf-8", buffering=1)
    _stream_file.write(json.dumps({"stream": stream, "text": text}) + "\n")
    _stream_file.flush()


def write_output(text: str) -> None:
    print(text, flush=True)


def write_error(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def write_warning(text: str) -> None:
    _write("warning", text)


def write_verbose(text: str) -> None:
    _write("verbose", text)


def write_debug(text: str) -> None:
    _write("debug", text)


def write_progress(activity: str, percent: int | None = None) -> None:
    _write("progress", activity if percent is None else f"{activity} ({percent}%)")


# -- Entra ID tokens through the job's federated token (issue 14) --------------------------------------

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
# RFC 7523 §2.2: a JWT as client authentication on a client_credentials grant.
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_TENANT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")

# What the AADSTS codes users hit most mean for a credo job, and what fixes them
# (../shared/reference/workload-identity.md §1.6; Entra ID's error code reference).
_CHECK = "compare with what credo prints: credo oidc federated-credential --group GROUP"
AADSTS_HINTS = {
    70021: "no federated credential of the app matches the token's issuer, subject and audience (a new "
    "credential needs a few minutes to replicate); " + _CHECK,
    700211: "the app's federated credential names another issuer: it must equal credo's issuer URL byte for "
    "byte (scheme, case, no trailing slash added or removed); " + _CHECK,
    700212: "the app's federated credential names another audience: use api://AzureADTokenExchange; "
    + _CHECK,
    700213: "the app's federated credential names another subject: credo:group:GROUP, or "
    "credo:group:GROUP:runbook:NAME if the group gives runbooks their own; " + _CHECK,
    7002131: "the app's flexible federated credential does not match; a custom issuer needs an exact "
    "subject: " + _CHECK,
    700214: "a federated credential's audience must be the URI api://AzureADTokenExchange, not a GUID",
    700024: "the job's token has expired or is not valid yet: check this host's clock (chrony) and the "
    "job's warnings (the worker rewrites the token file at half its lifetime)",
    700027: "Entra ID could not verify the token's signature: its key is not in the issuer's published "
    "JWKS (a rotation not yet published?); run credo oidc check --group GROUP",
    50013: "Entra ID could not verify the token: check the issuer's published JWKS with credo oidc check",
    50166: "Entra ID could not fetch the issuer's discovery document or JWKS: publish them at the issuer "
    "URL over HTTPS (credo oidc publish) and run credo oidc check --group GROUP",
    700016: "the app is not in that tenant: an administrator of the tenant must grant admin consent "
    "(https://login.microsoftonline.com/TENANT/adminconsent?client_id=CLIENT_ID), or check --client-id",
    7000229: "the app has no service principal in that tenant: grant admin consent there",
    65001: "admin consent for the app is missing in that tenant",
    650056: "the app does not request that permission: add it (application permission) and consent again",
    650057: "the app does not request that resource's permissions: add them and consent again",
    70011: "the scope is not valid: a client credentials request takes one resource's /.default, e.g. "
    "https://graph.microsoft.com/.default",
    1002012: "client credentials need a scope ending in /.default, e.g. https://graph.microsoft.com/.default",
    500011: "the scope's resource has no service principal in that tenant: check --scope and consent",
    90002: "no such tenant: check --tenant-id (a tenant id or a verified domain name)",
    53003: "a Conditional Access policy blocked the app in that tenant",
}


class TokenError(RuntimeError):
    """The token exchange failed. ``kind``: ``environment`` (not in a job with a federated token),
    ``input`` (a bad argument), ``unreachable`` (no answer), ``refused`` (Entra ID said no);
    ``code``: the AADSTS code, if any; ``hint``: the fix, one line."""

    def __init__(self, message: str, *, kind: str, hint: str | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.message, self.kind, self.hint, self.code = message, kind, hint, code


def token(*, tenant_id: str, client_id: str, scope: str, authority_host: str | None = None) -> str:
    """An Entra ID access token for ``client_id`` (an app trusting the job's token through a federated
    credential) in ``tenant_id``, for ``scope`` (``https://graph.microsoft.com/.default``).

    Raises TokenError with the AADSTS code's meaning and fix. The token is only returned: keep it
    out of the job's output.
    """
    return str(token_response(tenant_id=tenant_id, client_id=client_id, scope=scope,
                              authority_host=authority_host)["access_token"])  # fmt: skip


def token_response(
    *, tenant_id: str, client_id: str, scope: str, authority_host: str | None = None, timeout: float = 30.0
) -> dict[str, Any]:
    """Like ``token``, the whole answer: ``access_token``, ``token_type``, ``expires_in`` and
    ``expires_on`` (epoch seconds, computed here as azure-identity does)."""
    if not tenant_id or not set(tenant_id) <= _TENANT_CHARS:
        raise TokenError(f"tenant {tenant_id!r} is not a tenant id or domain name", kind="input",
                         hint="give the target tenant's id (a GUID) or a verified domain")  # fmt: skip
    if not client_id or any(c.isspace() or c in "/?#&" for c in client_id):
        raise TokenError(f"client id {client_id!r} is not an application id", kind="input",
                         hint="give the multi-tenant app's application (client) id")  # fmt: skip
    if not scope.endswith("/.default") or any(c.isspace() for c in scope):
        raise TokenError(f"scope {scope!r} is not a resource's /.default", kind="input",
                         hint=AADSTS_HINTS[1002012])  # fmt: skip
    host = (authority_host or os.environ.get("AZURE_AUTHORITY_HOST") or DEFAULT_AUTHORITY_HOST).rstrip("/")
    if not host.startswith("https://"):
        raise TokenError(f"authority host {host!r} is not an https:// URL", kind="input",
                         hint="leave it out for Azure's public cloud (https://login.microsoftonline.com)")  # fmt: skip
    assertion = _federated_token()
    url = f"{host}/{tenant_id}/oauth2/v2.0/token"
    form = urllib.parse.urlencode({
        "grant_type": "client_credentials", "client_id": client_id, "scope": scope,
        "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion,
    }).encode()  # fmt: skip
    request = urllib.request.Request(url, data=form, method="POST", headers={  # noqa: S310 (https only)
        "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json",
    })  # fmt: skip
    started = time.time()
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=_tls_context()) as response:  # noqa: S310
            data: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise _refusal(exc) from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        hint = "check the network and proxy; AZURE_AUTHORITY_HOST names the authority"
        if isinstance(reason, ssl.SSLCertVerificationError):
            hint = "the authority's certificate is not trusted: REQUESTS_CA_BUNDLE or SSL_CERT_FILE names a CA bundle"
        raise TokenError(f"{url} does not answer: {reason}", kind="unreachable", hint=hint) from None
    except ValueError:
        raise TokenError(f"{url} answered with something other than JSON", kind="unreachable") from None
    if "access_token" not in data:
        raise TokenError(f"{url} answered without an access token", kind="refused")
    expires_in = int(data.get("expires_in", 0))
    return {
        "token_type": data.get("token_type", "Bearer"),
        "expires_in": expires_in,
        "expires_on": int(started) + expires_in,
        "access_token": data["access_token"],
    }


def _federated_token() -> str:
    path = os.environ.get("AZURE_FEDERATED_TOKEN_FILE")
    if not path:
        raise TokenError("AZURE_FEDERATED_TOKEN_FILE is not set: this is not a job with an Azure token",
                         kind="environment", hint="give the worker group an identity: credo group set GROUP "
                         "--token-audience api://AzureADTokenExchange")  # fmt: skip
    try:
        # Read at every call: the worker rewrites the file while the job runs.
        with open(path, encoding="ascii") as handle:
            text = handle.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenError(f"cannot read the federated token file {path}: {exc}", kind="environment") from None
    if text.count(".") != 2:
        raise TokenError(f"the federated token file {path} holds no token", kind="environment")
    return text


def _tls_context() -> ssl.SSLContext:
    """The system's CAs, or the bundle REQUESTS_CA_BUNDLE / SSL_CERT_FILE names (as requests does)."""
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
    return ssl.create_default_context(cafile=bundle) if bundle else ssl.create_default_context()


def _refusal(exc: urllib.error.HTTPError) -> TokenError:
    """Entra's error answer (``error``, ``error_description`` "AADSTSnnnn: ...", ``error_codes``) as
    one line and the code's fix."""
    try:
        data = json.loads(exc.read())
    except (ValueError, OSError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    codes = data.get("error_codes") or []
    code = int(codes[0]) if codes and str(codes[0]).isdigit() else None
    description = str(data.get("error_description") or "").replace("\r\n", "\n").split("\n")[0].strip()
    if not description:
        description = f"HTTP {exc.code} {data.get('error') or exc.reason}"
    if code is not None and not description.startswith("AADSTS"):
        description = f"AADSTS{code}: {description}"
    hint = AADSTS_HINTS.get(code) if code is not None else None
    if hint is None and code is not None:
        hint = f"see https://login.microsoftonline.com/error?code={code}"
    kind = "unreachable" if exc.code >= 500 else "refused"
    return TokenError(f"Entra ID refused the token exchange: {description}", kind=kind, hint=hint, code=code)
