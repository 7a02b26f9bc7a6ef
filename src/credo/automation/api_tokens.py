"""Named API tokens for automation (issue 15 point 1): shown once, stored hashed, expiring.

Format: ``credo_<id>_<secret>``. The prefix makes a leaked token findable by secret scanners
(GitHub's token formats do the same); ``id`` (8 hex) finds the row without comparing hashes;
``secret`` is 32 random bytes, base64url. Only SHA-256 of the whole token is stored: with 256 bits
of entropy a fast hash is enough (no password-style stretching needed), and the comparison is
constant-time. Pure: the server stores ``TokenRecord`` and passes the lookup in.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from credo.errors import InputError

__all__ = [
    "MAX_LIFETIME",
    "PREFIX",
    "TokenRecord",
    "digest",
    "new_token",
    "parse_lifetime",
    "token_id",
    "verify_token",
]

PREFIX = "credo_"
MAX_LIFETIME = timedelta(days=366)
_TOKEN = re.compile(r"credo_([0-9a-f]{8})_[A-Za-z0-9_-]{43}")
_DURATION = re.compile(r"(\d+)([mhdw])")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


@dataclass(frozen=True)
class TokenRecord:
    id: str
    name: str
    sha256: str = field(repr=False)
    created: datetime
    expires: datetime
    role: str | None = None  # a role of its own, else the creator's grants apply
    revoked: bool = False


def digest(token: str) -> str:
    """What is stored of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_lifetime(text: str) -> timedelta:
    """``90d``, ``12h``, ``2w``, ``30m`` -> a timedelta (at most a year)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise InputError(f"invalid lifetime {text!r}", hint="write it as 30m, 12h, 90d or 2w")
    digits = match.group(1).lstrip("0") or "0"
    # Seven digits are over a year in any unit, and int() and timedelta refuse far larger numbers
    # with a bare ValueError or OverflowError: the length is checked before either sees them.
    lifetime = int(digits) * _UNITS[match.group(2)] if len(digits) <= 6 else None
    if lifetime is None or not timedelta(minutes=1) <= lifetime <= MAX_LIFETIME:
        raise InputError(f"lifetime {match.group(0)} is out of range", hint="between 1m and 366d")
    return lifetime


def new_token(
    name: str, lifetime: timedelta, now: datetime, role: str | None = None
) -> tuple[str, TokenRecord]:
    """A fresh token (to show once) and the record to store (its hash, never the token)."""
    token_id = secrets.token_hex(4)
    token = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    return token, TokenRecord(token_id, name, digest(token), now, now + lifetime, role)


def token_id(token: str) -> str | None:
    """The id part of something that looks like a credo API token, else None."""
    match = _TOKEN.fullmatch(token)
    return match.group(1) if match else None


def verify_token(
    token: str, lookup: Callable[[str], TokenRecord | None], now: datetime
) -> TokenRecord | None:
    """The record of a valid, unrevoked, unexpired ``token``; None for anything else (the caller
    answers every failure alike, so that nothing about a token's existence leaks)."""
    found = token_id(token)
    record = lookup(found) if found else None
    if record is None:
        digest(token)  # the same work either way
        return None
    if not hmac.compare_digest(record.sha256, digest(token)):
        return None
    if record.revoked or now >= record.expires:
        return None
    return record
