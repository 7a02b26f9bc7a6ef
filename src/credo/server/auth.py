"""Who is calling: the admin (a bearer token in the data dir) or a worker (Kerberos, then a session).

Workers authenticate with HTTP Negotiate (RFC 4559): a SPNEGO/Kerberos token for the server's
``HTTP/`` service, accepted with the server's own keytab; the initiator is the worker's computer
account. The answer carries a short-lived session token that any server process of the
deployment can verify (``SessionTokens``), so that the hot path (claims, heartbeats, output)
costs no Kerberos exchange; a 401 makes the worker negotiate again (after its session expired).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from pathlib import Path

import gssapi
from gssapi.raw import GSSError
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from credo.errors import EnvironmentProblem, NotPermittedError
from credo.files import read_or_create_secret

__all__ = ["SESSION_KEY_FILE", "AdminToken", "NegotiateAcceptor", "SessionTokens"]

SESSION_SECONDS = 3600
SESSION_KEY_FILE = "worker-session.key"
# A worker session token's "aud": no other token signed with some key of credo's passes for one.
_SESSION_AUDIENCE = "credo worker session"
# SessionTokens keeps at most this many verified tokens (one per worker process and hour).
_VERIFIED_KEPT = 4096


class AdminToken:
    """The admin token: created (0600) in the data dir on first start, compared in constant time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._digest = hashlib.sha256(
            read_or_create_secret(path, lambda: secrets.token_urlsafe(32)).encode()
        ).digest()

    @property
    def fingerprint(self) -> str:
        """Names this admin token (not a way to find it): a web UI session signed in with it
        ends when it is replaced (credo.server.ui.session)."""
        return hashlib.sha256(b"credo admin token fingerprint\x00" + self._digest).hexdigest()[:32]

    def check(self, presented: str) -> bool:
        return hmac.compare_digest(hashlib.sha256(presented.encode()).digest(), self._digest)


class SessionTokens:
    """Session tokens for authenticated workers, which any server process sharing the data dir
    can verify: a JWT (RFC 7519) signed with HMAC-SHA256 under ``worker-session.key`` (0600,
    created at first start, like ``admin.token``), naming the worker's principal and expiring
    after SESSION_SECONDS. Nothing is kept per session, so a replica that did not issue a session
    accepts it, and a restart does not end it. Signed and checked with joserfc, not by hand.
    """

    def __init__(self, key_file: Path) -> None:
        secret = read_or_create_secret(key_file, lambda: secrets.token_urlsafe(32))
        self._key = OctKey.import_key(secret.encode())
        # Tokens whose signature was checked: token -> (principal, expiry). Only valid ones.
        self._verified: dict[str, tuple[str, int]] = {}
        self._claims = jwt.JWTClaimsRegistry(
            aud={"essential": True, "value": _SESSION_AUDIENCE},
            sub={"essential": True},
            exp={"essential": True},
        )

    def issue(self, principal: str) -> str:
        now = int(time.time())
        claims = {"sub": principal, "aud": _SESSION_AUDIENCE, "iat": now, "exp": now + SESSION_SECONDS}
        return jwt.encode({"alg": "HS256"}, claims, self._key, algorithms=["HS256"])

    def principal(self, token: str) -> str | None:
        """The worker a valid, unexpired session token names, else None (whatever is wrong)."""
        hit = self._verified.get(token)
        if hit is not None and hit[1] > time.time():
            return hit[0]
        try:
            decoded = jwt.decode(token, self._key, algorithms=["HS256"])
            self._claims.validate(decoded.claims)
        # TypeError: joserfc iterates a header's "crit" without checking that it is a list, before
        # it checks the signature, so anyone may send one that raises it.
        except (JoseError, ValueError, TypeError):
            return None
        subject, expires = decoded.claims.get("sub"), decoded.claims.get("exp")
        if not isinstance(subject, str) or not isinstance(expires, int):
            return None
        # Every worker call carries its session: checking the signature each time cost 0.1 ms.
        if len(self._verified) >= _VERIFIED_KEPT:
            self._verified.clear()
        self._verified[token] = (subject, expires)
        return subject


class NegotiateAcceptor:
    """Accept SPNEGO/Kerberos tokens with the server's keytab (python-gssapi)."""

    def __init__(self, keytab: Path | None) -> None:
        self.keytab = keytab
        self._creds: gssapi.Credentials | None = None
        if keytab is not None and not keytab.exists():
            raise EnvironmentProblem(
                f"service keytab {keytab} is missing",
                hint="write it with `credo gmsa keytab NAME --spn HTTP/<server fqdn> --out FILE`",
            )

    def _credentials(self) -> gssapi.Credentials:
        if self._creds is None:
            store: dict[bytes | str, bytes | str] | None = (
                {"keytab": f"FILE:{self.keytab}"} if self.keytab else None
            )
            self._creds = gssapi.Credentials(usage="accept", store=store)
        return self._creds

    def accept(self, header_value: str) -> tuple[str, str | None]:
        """(initiator principal, base64 reply token or None) for an ``Authorization: Negotiate`` value."""
        if self.keytab is None:
            raise NotPermittedError("this server has no service keytab: Kerberos is not enabled")
        try:
            token = base64.b64decode(header_value, validate=True)
            ctx = gssapi.SecurityContext(creds=self._credentials(), usage="accept")
            reply = ctx.step(token)
        except (ValueError, GSSError) as exc:
            raise NotPermittedError(f"Kerberos authentication failed: {exc}") from exc
        if not ctx.complete:
            raise NotPermittedError("Kerberos authentication did not complete in one step")
        return str(ctx.initiator_name), base64.b64encode(reply).decode() if reply else None
