"""Who is in which AD group, for role grants: the directory's tokenGroups (nested groups and the
primary group count, MS-ADTS 3.1.1.4.5.19), read as the server's own account and cached per user.

The server binds to LDAP with the account of its service keytab (the gMSA whose ``HTTP/`` keys it
holds), as ``credo.gmsa.session`` does for hosts: no stored password. A user's groups are kept
``TTL`` seconds (a removal from a group takes at most that long to count, as Windows tokens keep
their groups until the next logon); failures are not cached.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from credo.endpoint.directory import resolve_token
from credo.gmsa.session import HostSession, SessionSettings

__all__ = ["TTL", "GroupResolver"]

TTL = 60.0


class GroupResolver:
    """``of(principal)``: the casefolded principal, its DOMAIN\\name, SID, and its groups' SIDs
    and DOMAIN\\names. Without a keytab (no Kerberos), the principal alone."""

    def __init__(self, keytab: Path | None, ttl: float = TTL) -> None:
        self.keytab = keytab
        self.ttl = ttl
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def of(self, principal: str) -> frozenset[str]:
        key = principal.casefold()
        if self.keytab is None or "@" not in principal:
            return frozenset({key})
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and time.monotonic() - hit[0] < self.ttl:
                return hit[1]
        found = self._read(principal) | {key}
        with self._lock:
            self._cache[key] = (time.monotonic(), found)
        return found

    def cached(self, principal: str) -> bool:
        """Would ``of(principal)`` answer without asking the directory?"""
        key = principal.casefold()
        if self.keytab is None or "@" not in principal:
            return True
        with self._lock:
            hit = self._cache.get(key)
        return hit is not None and time.monotonic() - hit[0] < self.ttl

    def _read(self, principal: str) -> frozenset[str]:
        with HostSession(SessionSettings(host_keytab=self.keytab)) as session:
            realm = principal.rsplit("@", 1)[1]
            if realm.upper() != session.realm.upper():
                return frozenset()  # a user of another realm: only its principal can be granted
            token = resolve_token(session.directory, principal)
        names = {token.principal, *token.group_sids, *token.group_names}
        if token.sid:
            names.add(token.sid)
        return frozenset(name.casefold() for name in names)
