"""A stand-in for credo's issuer in delivery tests: RS256 tokens minted with PyJWT and a key of
its own (never credo's code), in the contract's shape (issue 14, point 1)."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from credo.automation.identity import IssuedToken, group_subject

ISSUER = "https://issuer.credo.test"


@dataclass
class FakeIssuer:
    """Mints tokens for one group; records every request; can be told to fail."""

    group: str = "tier1"
    lifetime: float = 600.0
    runbook: str = "hello"
    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    issued: list[str] = field(default_factory=list, repr=False)
    calls: list[tuple[str, bool]] = field(default_factory=list)
    failing: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def mint(self, audience: str, runbook_subject: bool = False, **extra: Any) -> IssuedToken:
        now = time.time()
        subject = group_subject(self.group, self.runbook if runbook_subject else None)
        claims = {
            "iss": ISSUER, "sub": subject, "aud": audience, "iat": int(now), "nbf": int(now),
            "exp": now + self.lifetime, "jti": secrets.token_hex(8),
            "credo": {"group": self.group, "job_id": "j", "runbook": self.runbook},
        } | extra  # fmt: skip
        token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "test"})
        with self.lock:
            self.issued.append(token)
        expires = datetime.fromtimestamp(now, UTC) + timedelta(seconds=self.lifetime)
        return IssuedToken(token=token, subject=subject, audience=audience, expires_at=expires)

    def __call__(self, audience: str, runbook_subject: bool) -> IssuedToken:
        from credo.errors import UnreachableError

        with self.lock:
            self.calls.append((audience, runbook_subject))
            failing = self.failing
        if failing:
            raise UnreachableError("the server at https://credo.test does not answer")
        return self.mint(audience, runbook_subject)

    def verify(self, token: str, audience: str) -> dict[str, Any]:
        """PyJWT's verdict on ``token`` (signature, exp, nbf, iss, aud)."""
        claims: dict[str, Any] = jwt.decode(
            token, self.key.public_key(), algorithms=["RS256"], audience=audience, issuer=ISSUER,
            options={"require": ["exp", "iat", "nbf", "sub", "aud", "iss", "jti"]},
        )  # fmt: skip
        return claims
