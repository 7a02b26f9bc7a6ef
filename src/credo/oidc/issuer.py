"""The issuer as the server runs it: its URL, its key store (re-read when ``credo oidc rotate``
changes the file), its documents and minting.

The server never writes the store after creating it: rotation is an admin's act on the server
host (``credo oidc rotate``), and the server picks the new current key at its next token by the
file's modification time and inode (one stat per token, about a microsecond).
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from credo.automation.identity import IssuedToken
from credo.errors import EnvironmentProblem
from credo.oidc.documents import discovery, issuer_warning, validate_issuer
from credo.oidc.keys import KeyStore
from credo.oidc.tokens import JobClaims, ServiceClaims, mint

__all__ = ["Issuer"]

log = logging.getLogger(__name__)


class Issuer:
    def __init__(self, url: str, key_file: Path, *, create: bool = True) -> None:
        self.url = validate_issuer(url)
        warning = issuer_warning(url)
        if warning:
            log.warning("%s", warning)
        self.key_file = key_file
        self._lock = threading.Lock()
        self._store = KeyStore.open(key_file, create=create)
        self._stamp = self._file_stamp()

    def __repr__(self) -> str:
        return f"Issuer({self.url!r}, {str(self.key_file)!r})"

    def _file_stamp(self) -> tuple[int, int]:
        try:
            info = os.stat(self.key_file)
        except OSError as exc:
            raise EnvironmentProblem(
                f"cannot read the OIDC key store {self.key_file}: {exc.strerror}"
            ) from None
        return info.st_ino, info.st_mtime_ns

    @property
    def store(self) -> KeyStore:
        """The key store, re-read if the file changed (a rotation replaces it: new inode)."""
        stamp = self._file_stamp()
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._store = KeyStore.load(self.key_file)
                    self._stamp = stamp
                    log.info("OIDC key store reloaded: current key %s", self._store.current.kid)
        return self._store

    def discovery(self) -> dict[str, Any]:
        return discovery(self.url)

    def jwks(self) -> dict[str, Any]:
        return self.store.jwks()

    def mint(
        self,
        *,
        subject: str,
        audience: str,
        lifetime: int,
        claims: JobClaims | ServiceClaims,
        now: datetime | None = None,
    ) -> IssuedToken:
        return mint(
            self.store.current, issuer=self.url, subject=subject, audience=audience, lifetime=lifetime,
            claims=claims, now=now,
        )  # fmt: skip
