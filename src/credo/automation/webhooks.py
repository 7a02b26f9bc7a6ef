"""Signed webhooks: the signature scheme, secrets and how they are stored, and a rate limiter.

Pure: no I/O, time is always passed in. The server's webhook route calls ``check_call``.

Signature (``X-Credo-Signature``)
---------------------------------
A caller signs each request with the webhook's signing secret::

    X-Credo-Signature: t=<unix seconds>,v1=<hex>

    <hex> = lowercase hex of HMAC-SHA256(key = the secret's UTF-8 bytes,
                                          message = ASCII "<t>." followed by the raw body bytes)

``t`` is a decimal integer (no sign, no fraction). The header is a comma-separated list of
``key=value`` items, blanks around them ignored; ``v1`` may appear several times (a sender that
rotates its secret may sign with both), items with other keys are ignored so that a later
scheme can be added beside ``v1``. The scheme is Stripe's (``Stripe-Signature``), so existing
client code ports with the header name changed. Test vector: secret ``credo_whsec_test``,
``t`` = 1700000000, body ``{"event":"ping"}``::

    t=1700000000,v1=a7c96684607395c86f579b1074df710b78511d556bc2ce74b525e660ddd793be

which ``printf '1700000000.{"event":"ping"}' | openssl dgst -sha256 -hmac credo_whsec_test``
reproduces.

The server accepts a call when some ``v1`` matches a secret currently accepted (compared in
constant time, ``hmac.compare_digest``), ``|now - t| <= 300`` seconds (a replay window of
five minutes in both directions, which also tolerates clock skew), and the same signature was
not accepted before within that window. Anything else is refused; the route answers every
refusal but rate limiting with the same 404 as an unknown URL, so that a URL's existence does
not leak (``Outcome.http_status``).

Secrets and storage
-------------------
A webhook has two secrets, both shown once at creation:

* the URL token (``/webhooks/<token>``): 32 random bytes, base64url (``secrets.token_urlsafe``).
  It only identifies the webhook; the server keeps its SHA-256 (``sha256:<hex>``), a
  high-entropy token needing no slow hash, and looks the webhook up by that.
* the signing secret (``credo_whsec_`` + 32 random bytes, base64url): the server must recompute
  HMACs, so a hash will not do. It is *sealed*: AES-256-GCM under a server key that lives
  outside the database (a 0600 file owned by the server's user), with the webhook's id as
  associated data so that a sealed secret copied to another row does not open.

Threat model: a copy of the database (a backup, a replica, an SQL injection that reads) yields
neither secret, so it cannot call or forge a webhook, and rotating the server key file does not
require re-issuing webhooks (``SecretSealer`` opens with old keys, seals with the first). An
attacker who holds both the database and the key file, that is the server host, can sign calls,
but could also start jobs directly: the webhook adds nothing there. Rotating a signing secret
keeps the URL: the previous secret stays accepted until a deadline (``SigningKeys.rotate``).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from credo.automation.parameters import MAX_PARAMETERS_BYTES
from credo.errors import EnvironmentProblem

__all__ = [
    "DEFAULT_ROTATION_OVERLAP",
    "MAX_BODY_BYTES",
    "REPLAY_WINDOW",
    "SECRET_PREFIX",
    "SIGNATURE_HEADER",
    "Outcome",
    "ReplayGuard",
    "SealError",
    "SecretSealer",
    "SigningKeys",
    "TokenBucket",
    "WebhookState",
    "check_call",
    "hash_url_token",
    "new_sealing_key",
    "new_signing_secret",
    "new_url_token",
    "sign",
    "signature_header",
]

SIGNATURE_HEADER = "X-Credo-Signature"
REPLAY_WINDOW = 300  # seconds, either side of the server's clock
# The body is delivered as one runbook parameter, so it is capped like a job's parameters.
MAX_BODY_BYTES = MAX_PARAMETERS_BYTES
DEFAULT_ROTATION_OVERLAP = timedelta(hours=24)
SECRET_PREFIX = "credo_whsec_"  # noqa: S105 - a prefix that secret scanners can match, no secret
_TOKEN_BYTES = 32
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_DIGITS = re.compile(r"^[0-9]{1,12}$")


class Outcome(enum.StrEnum):
    """What happened to a webhook call; the metrics and the audit log record it."""

    OK = "ok"
    UNSIGNED = "unsigned"
    BAD_SIGNATURE = "bad-signature"
    REPLAYED = "replayed"  # outside the replay window, or a signature seen before
    EXPIRED = "expired"
    DISABLED = "disabled"
    RATE_LIMITED = "rate-limited"

    @property
    def http_status(self) -> int:
        """202 (a job was queued), 429, or 404 for every other refusal: nothing leaks."""
        return {Outcome.OK: 202, Outcome.RATE_LIMITED: 429}.get(self, 404)


# --- secrets ----------------------------------------------------------------------------------


def new_url_token() -> str:
    return secrets.token_urlsafe(_TOKEN_BYTES)


def hash_url_token(token: str) -> str:
    """The stored form of a URL token: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def new_signing_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)


class SealError(EnvironmentProblem):
    """A sealed secret does not open with the server's keys (key file replaced or row copied)."""


def new_sealing_key() -> bytes:
    """A fresh server key: 32 random bytes for AES-256-GCM (the server writes it 0600)."""
    return AESGCM.generate_key(bit_length=256)


class SecretSealer:
    """Seal and open signing secrets with AES-256-GCM (NIST SP 800-38D; 96-bit random nonces).

    ``keys``: the server's keys, newest first. ``seal`` uses the first; ``open`` picks the key by
    the id in the sealed form, ``v1.<key id>.<base64url(nonce || ciphertext || tag)>``, where the
    key id is the first 8 hex digits of the key's SHA-256. ``context`` (the webhook's id) is
    bound as associated data. Random 96-bit nonces are safe for far more than 2^32 seals per key
    (the SP 800-38D bound); webhooks are created by people, a few a day.
    """

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one key")
        for key in keys:
            if len(key) != 32:
                raise ValueError("keys are 32 bytes (AES-256)")
        self._keys = {self.key_id(key): AESGCM(key) for key in reversed(keys)}
        self._current = self.key_id(keys[0])

    def __repr__(self) -> str:
        return f"SecretSealer(key_ids={list(self._keys)!r})"

    @staticmethod
    def key_id(key: bytes) -> str:
        return hashlib.sha256(key).hexdigest()[:8]

    def seal(self, secret: str, *, context: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._keys[self._current].encrypt(nonce, secret.encode(), context.encode())
        return f"v1.{self._current}.{base64.urlsafe_b64encode(nonce + sealed).decode().rstrip('=')}"

    def open(self, sealed: str, *, context: str) -> str:
        version, _, rest = sealed.partition(".")
        key_id, _, data = rest.partition(".")
        hint = "restore the server's webhook key file, or rotate the webhook's secret"
        if version != "v1" or key_id not in self._keys:
            raise SealError("a webhook secret is sealed with a key this server does not have", hint=hint)
        try:
            raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
            return self._keys[key_id].decrypt(raw[:12], raw[12:], context.encode()).decode()
        except (InvalidTag, ValueError):
            raise SealError("a sealed webhook secret does not open (damaged or moved)", hint=hint) from None


@dataclass(frozen=True)
class SigningKeys:
    """A webhook's accepted signing secrets: the current one and, until a deadline, the previous."""

    current: str = field(repr=False)
    previous: str | None = field(default=None, repr=False)
    previous_until: datetime | None = None

    def accepted(self, now: datetime) -> tuple[str, ...]:
        if self.previous is not None and self.previous_until is not None and now < self.previous_until:
            return (self.current, self.previous)
        return (self.current,)

    def rotate(self, new: str, now: datetime, overlap: timedelta = DEFAULT_ROTATION_OVERLAP) -> SigningKeys:
        """``new`` becomes current; the old current stays accepted for ``overlap`` (may be 0)."""
        if overlap < timedelta(0):
            raise ValueError("overlap must not be negative")
        return SigningKeys(current=new, previous=self.current, previous_until=now + overlap)


# --- signatures ------------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of ``"<timestamp>." + body`` under ``secret``."""
    message = str(int(timestamp)).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secrets_: Sequence[str], timestamp: int, body: bytes) -> str:
    """The ``X-Credo-Signature`` value for a body, signed with each of ``secrets_``."""
    return ",".join([f"t={int(timestamp)}"] + [f"v1={sign(s, timestamp, body)}" for s in secrets_])


def _parse_header(value: str) -> tuple[int, list[str]] | None:
    """``(t, [v1 signatures])``, or None when the header is not of the documented form."""
    timestamp: int | None = None
    signatures: list[str] = []
    for item in value.split(","):
        key, sep, val = item.strip().partition("=")
        if not sep:
            return None
        key, val = key.strip(), val.strip()
        if key == "t":
            if timestamp is not None or not _DIGITS.match(val):
                return None
            timestamp = int(val)
        elif key == "v1":
            if not _HEX64.match(val):
                return None
            signatures.append(val)
    if timestamp is None or not signatures:
        return None
    return timestamp, signatures


class ReplayGuard:
    """Remembers accepted signatures for the replay window, so a captured call is refused.

    Pure and in-memory: ``now`` is passed in. One server process keeps one; with several
    processes the server records the digest instead in a table with a unique key (the same
    rule, enforced by the database). Entries are kept until their timestamp leaves the window,
    so memory is bounded by the calls accepted in ten minutes.
    """

    def __init__(self, window: int = REPLAY_WINDOW) -> None:
        self._window = window
        self._seen: dict[str, int] = {}  # signature -> the unix second after which it may go

    def seen(self, signature: str, now: float) -> bool:
        """True if ``signature`` was accepted within the window."""
        for old in [s for s, until in self._seen.items() if until < now]:
            del self._seen[old]
        return signature in self._seen

    def remember(self, signature: str, timestamp: int) -> None:
        self._seen[signature] = timestamp + self._window

    def __len__(self) -> int:
        return len(self._seen)


# --- rate limit ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenBucket:
    """A token bucket (``capacity`` calls at once, refilled at ``rate`` per second), immutable.

    ``take`` returns the decision and the next state, so the server may keep the state in a
    database row under the row's lock when several processes share a webhook.
    """

    capacity: float
    rate: float
    tokens: float
    updated: float  # unix seconds of the last take

    @classmethod
    def full(cls, capacity: float, rate: float, now: float) -> TokenBucket:
        if capacity < 1 or rate <= 0:
            raise ValueError("capacity >= 1 and rate > 0")
        return cls(capacity=capacity, rate=rate, tokens=capacity, updated=now)

    def _refilled(self, now: float) -> float:
        elapsed = max(0.0, now - self.updated)  # a clock that steps back refills nothing
        return min(self.capacity, self.tokens + elapsed * self.rate)

    def take(self, now: float) -> tuple[bool, TokenBucket]:
        tokens = self._refilled(now)
        updated = max(now, self.updated)
        if tokens >= 1:
            return True, replace(self, tokens=tokens - 1, updated=updated)
        return False, replace(self, tokens=tokens, updated=updated)

    def retry_after(self, now: float) -> float:
        """Seconds until one call would be allowed (for the 429's ``Retry-After``)."""
        return max(0.0, (1 - self._refilled(now)) / self.rate)


# --- the check a webhook route makes ---------------------------------------------------------


@dataclass(frozen=True)
class WebhookState:
    """What a call is checked against: the webhook's keys, switch, expiry and rate limit."""

    keys: SigningKeys
    enabled: bool = True
    expires_at: datetime | None = None
    bucket: TokenBucket | None = None


def check_call(
    webhook: WebhookState,
    header: str | None,
    body: bytes,
    now: datetime,
    *,
    replay_guard: ReplayGuard | None = None,
) -> tuple[Outcome, TokenBucket | None]:
    """Decide a call; returns the outcome and the webhook's next rate-limit state.

    Order: disabled, expired, unsigned, bad signature, outside the window, seen before, rate
    limited. The rate limit is taken last, so that only correctly signed calls use it up: a
    stranger cannot exhaust the sender's budget, and cannot see a 429 (which would tell that
    the URL exists).
    """
    bucket = webhook.bucket
    if not webhook.enabled:
        return Outcome.DISABLED, bucket
    if webhook.expires_at is not None and now >= webhook.expires_at:
        return Outcome.EXPIRED, bucket
    if header is None or not header.strip():
        return Outcome.UNSIGNED, bucket
    parsed = _parse_header(header)
    if parsed is None:
        return Outcome.BAD_SIGNATURE, bucket
    timestamp, offered = parsed
    match: str | None = None
    for secret in webhook.keys.accepted(now):
        expected = sign(secret, timestamp, body).encode()
        for candidate in offered:
            # Every pair is compared (no early exit), in constant time per comparison.
            if hmac.compare_digest(expected, candidate.encode()) and match is None:
                match = candidate
    if match is None:
        return Outcome.BAD_SIGNATURE, bucket
    if abs(now.timestamp() - timestamp) > REPLAY_WINDOW:
        return Outcome.REPLAYED, bucket
    if replay_guard is not None and replay_guard.seen(match, now.timestamp()):
        return Outcome.REPLAYED, bucket
    if bucket is not None:
        allowed, bucket = bucket.take(now.timestamp())
        if not allowed:
            return Outcome.RATE_LIMITED, bucket
    # Remembered only when accepted: a call refused with 429 may be sent again as it is.
    if replay_guard is not None:
        replay_guard.remember(match, timestamp)
    return Outcome.OK, bucket
