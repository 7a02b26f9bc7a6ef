"""HTTP Negotiate (RFC 4559) for credo's clients: the first SPNEGO token for ``HTTP@host``.

One place for the initiator side, shared by the worker (its computer account's ccache) and the
CLI (the user's own ticket: whatever ``kinit`` left in ``KRB5CCNAME`` or the default ccache).
Each request gets a fresh token: an authenticator is good for one request, and the acceptor's
replay cache refuses a second use (RFC 4120 §3.2.3; MIT krb5's rcache).
"""

from __future__ import annotations

import base64
from collections.abc import Generator

import httpx

from credo.errors import NotPermittedError

__all__ = ["NegotiateAuth", "spnego_token"]


def spnego_token(host: str, ccache: str | None = None) -> bytes:
    """The first (and, with Kerberos, only) SPNEGO token for the ``HTTP@host`` service, from
    ``ccache`` (a ccache name) or the default one. Raises ``gssapi.raw.GSSError``."""
    import gssapi  # deferred: only clients that negotiate pay for loading GSS-API

    store: dict[bytes | str, bytes | str] | None = {"ccache": ccache} if ccache else None
    creds = gssapi.Credentials(usage="initiate", store=store) if store else None
    name = gssapi.Name(f"HTTP@{host}", gssapi.NameType.hostbased_service)
    return gssapi.SecurityContext(name=name, creds=creds, usage="initiate").step() or b""


class NegotiateAuth(httpx.Auth):
    """``Authorization: Negotiate`` on every request, with the user's default credentials.

    A ticket that cannot be had (no ``kinit``, expired, no ``HTTP/`` principal for the host) is
    one clear ``NotPermittedError`` (exit 5).
    """

    def __init__(self, host: str) -> None:
        self.host = host

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        from gssapi.raw import GSSError

        try:
            token = spnego_token(self.host)
        except GSSError as exc:
            # The GSS message names the ccache and principal at most: never a key or a ticket.
            raise NotPermittedError(
                f"no API token, and no Kerberos ticket for HTTP/{self.host}: {exc.gen_message()}",
                hint="sign in with `kinit you@REALM`, or set CREDO_TOKEN to an API token "
                "(`credo token create`); the server must be named as in its HTTP/ principal",
            ) from None
        request.headers["Authorization"] = f"Negotiate {base64.b64encode(token).decode()}"
        yield request
