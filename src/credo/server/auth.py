"""Who is calling: the admin (a bearer token in the data dir) or a worker (Kerberos, then a session).

Workers authenticate with HTTP Negotiate (RFC 4559): a SPNEGO/Kerberos token for the server's
``HTTP/`` service, accepted with the server's own keytab; the initiator is the worker's computer
account. The answer carries a short-lived random session token (kept hashed in memory only), so
that the hot path (claims, heartbeats, output) costs no Kerberos exchange; a 401 makes the worker
negotiate again (after a server restart, say).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import gssapi
from gssapi.raw import GSSError

from credo.errors import EnvironmentProblem, NotPermittedError
from credo.files import read_or_create_secret

__all__ = ["AdminToken", "NegotiateAcceptor", "SessionTokens", "WorkerSession"]

SESSION_SECONDS = 3600


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


@dataclass(frozen=True)
class WorkerSession:
    principal: str
    expires: float


class SessionTokens:
    """Random bearer tokens for authenticated workers; only their hashes are kept."""

    def __init__(self) -> None:
        self._sessions: dict[bytes, WorkerSession] = {}
        self._lock = threading.Lock()

    def issue(self, principal: str) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[hashlib.sha256(token.encode()).digest()] = WorkerSession(
                principal, time.time() + SESSION_SECONDS
            )
        return token

    def principal(self, token: str) -> str | None:
        key = hashlib.sha256(token.encode()).digest()
        with self._lock:
            session = self._sessions.get(key)
            if session is None or session.expires < time.time():
                self._sessions.pop(key, None)
                return None
            return session.principal


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
