"""Named API tokens (issue 15 point 1): create (shown once), list, revoke, and check a presented one.

The token format, hashing and checks are ``credo.automation.api_tokens``; this service stores the
records (``api_tokens`` table, only the SHA-256) and records when each was last used. The last use
is written at most once a minute per token, so a busy automation does not turn every read into a
database write; and ``RecentTokens`` keeps what was verified for a few seconds, so that it does
not turn every call into a database read either.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from credo.automation.api_tokens import TokenRecord, digest, new_token, verify_token
from credo.automation.rbac import Role
from credo.errors import InputError, NotFoundError
from credo.server.clock import aware, now
from credo.server.gate import Caller, CallerKind
from credo.server.models import ApiToken

__all__ = [
    "LAST_USE_RESOLUTION",
    "RecentTokens",
    "Verified",
    "as_caller",
    "create_token",
    "list_tokens",
    "revoke_token",
    "verify",
    "verify_id",
]

LAST_USE_RESOLUTION = timedelta(minutes=1)
# RecentTokens drops its expired entries when it holds this many.
_PRUNE_AT = 1024


@dataclass(frozen=True)
class Verified:
    """Who a valid token speaks for: its id and name, its role (None: its creator's)."""

    id: str
    name: str
    role: Role | None
    created_by: str
    expires: datetime


def _role(text: str | None) -> Role | None:
    if text is None:
        return None
    try:
        return Role(text)
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise InputError(f"unknown role {text!r}", hint=f"one of {roles}") from None


def create_token(
    session: Session, name: str, lifetime: timedelta, role: str | None, created_by: str
) -> tuple[str, ApiToken]:
    """A new token (the only time it exists in clear) and its stored row."""
    checked = _role(role)
    token, record = new_token(name, lifetime, now(), checked.value if checked else None)
    row = ApiToken(
        id=record.id, name=record.name, sha256=record.sha256, role=record.role, created_by=created_by,
        created_at=record.created, expires_at=record.expires, last_used_at=None, revoked=False,
    )  # fmt: skip
    session.add(row)
    session.flush()
    return token, row


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)))


def revoke_token(session: Session, token_id: str) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFoundError(f"no API token {token_id!r}", hint="`credo token list` shows their ids")
    row.revoked = True
    return row


def verify(session: Session, presented: str) -> Verified | None:
    """The token's identity if it is valid now (recording its use), else None."""
    at = now()

    def lookup(token_id: str) -> TokenRecord | None:
        row = session.get(ApiToken, token_id)
        if row is None:
            return None
        expires = aware(row.expires_at)
        created = aware(row.created_at)
        assert expires is not None and created is not None
        return TokenRecord(row.id, row.name, row.sha256, created, expires, row.role, row.revoked)

    record = verify_token(presented, lookup, at)
    if record is None:
        return None
    row = session.get(ApiToken, record.id)
    assert row is not None
    last = aware(row.last_used_at)
    if last is None or at - last >= LAST_USE_RESOLUTION:
        row.last_used_at = at
    return Verified(row.id, row.name, _role(row.role), row.created_by, record.expires)


def verify_id(session: Session, token_id: str) -> Verified | None:
    """The token ``token_id`` stands for, if it is neither revoked nor expired now: a web UI
    session signed in with it lasts no longer than it (credo.server.ui.session)."""
    row = session.get(ApiToken, token_id)
    expires = aware(row.expires_at) if row is not None else None
    if row is None or row.revoked or expires is None or expires <= now():
        return None
    return Verified(row.id, row.name, _role(row.role), row.created_by, expires)


def as_caller(found: Verified) -> Caller:
    """The caller a valid token stands for (the gate's, the web UI's sign-in)."""
    role = found.role.value if found.role else None
    return Caller(CallerKind.API_TOKEN, f"token {found.name} ({found.id})", found.id, role, found.created_by)


class RecentTokens:
    """The tokens verified in the last ``ttl`` seconds, by the SHA-256 of what was presented (the
    token itself is not kept): a busy automation's calls skip the database read.

    A revocation through this process forgets them all at once (``forget``); one through another
    server process on the same database counts within ``ttl``, as a change of role grants does
    (credo.defaults.ACCESS_CACHE_SECONDS). An entry never outlives its token's expiry. Only valid
    tokens are kept, so strangers cannot fill it.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._known: dict[str, tuple[float, Caller]] = {}
        self._lock = threading.Lock()
        # Counts ``forget``s: a verification that read the token before a revocation here must
        # not put it back afterwards (``put`` with the generation read before).
        self.generation = 0

    def get(self, presented: str) -> Caller | None:
        key = digest(presented)
        with self._lock:
            hit = self._known.get(key)
            if hit is None:
                return None
            if time.monotonic() >= hit[0]:
                del self._known[key]
                return None
            return hit[1]

    def put(self, presented: str, found: Verified, generation: int) -> Caller:
        """Keep ``found`` (verified from a read that began at ``generation``); its caller."""
        caller = as_caller(found)
        left = min(self.ttl, (found.expires - now()).total_seconds())
        with self._lock:
            if left > 0 and generation == self.generation:
                stamp = time.monotonic()
                if len(self._known) >= _PRUNE_AT:  # drop the expired: only valid tokens come in
                    self._known = {k: v for k, v in self._known.items() if v[0] > stamp}
                self._known[digest(presented)] = (stamp + left, caller)
        return caller

    def forget(self) -> None:
        with self._lock:
            self._known.clear()
            self.generation += 1
