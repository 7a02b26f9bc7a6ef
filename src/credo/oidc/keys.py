"""The issuer's signing keys: RS256 (RSA 2048), ``kid`` = RFC 7638 thumbprint, and their rotation.

The key store is one JSON file, 0600, written atomically (``credo.files``) beside the server's
data (``oidc-keys.json`` in its data dir): each key's state, dates and PKCS#8 PEM. Only root (or
the server's user) reads it: ``credo oidc`` runs on the server host for that reason.

States, published in the JWKS in this order:

- ``next``: published, not yet used. It is in the JWKS from the moment it is made, so that the
  clouds (which cache JWKS documents) already know it when it starts signing.
- ``current``: signs every token.
- ``retired``: signs nothing; kept published until ``retire_at`` = retirement + the longest token
  lifetime (MAX_TOKEN_LIFETIME) + CACHE_MARGIN, so that every token it signed has expired, with
  room for verifiers' clock leeway and a static copy of the documents republished late.

``rotate()`` promotes next to current, makes a new next and retires the old current. It refuses
(Conflict) to promote a next key published for less than CACHE_MARGIN, or to publish more than
MAX_PUBLISHED keys; ``force`` overrides both (the oldest retired keys are then dropped, and
tokens they signed stop verifying). Entra caches only the first 100 keys of a JWKS
(../shared/reference/workload-identity.md §1.2): a handful is far below that.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from joserfc.jwk import RSAKey

from credo.automation.identity import MAX_TOKEN_LIFETIME
from credo.errors import Conflict, EnvironmentProblem
from credo.files import write_text_atomically

__all__ = [
    "CACHE_MARGIN",
    "KEY_FILE_NAME",
    "MAX_PUBLISHED",
    "KeyStore",
    "Rotation",
    "SigningKey",
    "generate_key",
    "prune_file",
    "rotate_file",
]

KEY_FILE_NAME = "oidc-keys.json"
# Seconds. Entra ID and AWS STS cache an issuer's JWKS for up to about an hour (neither documents
# an exact figure; AWS says it "caches the keys" and refetches on an unknown kid, Entra refreshes
# on a 24 h cycle or on an unknown kid). One hour is the margin on both sides of a rotation.
CACHE_MARGIN = 3600
MAX_PUBLISHED = 4  # next + current + two retired keys
KEY_BITS = 2048  # RS256: AWS rejects EdDSA, Entra tests RS256 only
_FORMAT = 1
_STATES = ("next", "current", "retired")


def generate_key() -> RSAKey:
    """A new RSA 2048 key whose ``kid`` is its RFC 7638 thumbprint."""
    key = RSAKey.generate_key(KEY_BITS, private=True)
    key.ensure_kid()  # joserfc: kid = RFC 7638 SHA-256 thumbprint when none is given
    return key


@dataclass(frozen=True)
class SigningKey:
    kid: str
    state: str
    created_at: datetime
    key: RSAKey = field(repr=False, compare=False)
    retire_at: datetime | None = None

    def public_jwk(self) -> dict[str, Any]:
        """The JWKS entry: kty, kid, use, alg, n, e (contract §2)."""
        public = self.key.as_dict(private=False)
        return {
            "kty": "RSA",
            "kid": self.kid,
            "use": "sig",
            "alg": "RS256",
            "n": public["n"],
            "e": public["e"],
        }

    def summary(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "state": self.state,
            "created_at": self.created_at.isoformat(),
            "retire_at": self.retire_at.isoformat() if self.retire_at else None,
        }


@dataclass(frozen=True)
class Rotation:
    """What ``rotate`` did."""

    current: str
    next: str
    retired: str
    retire_at: datetime
    dropped: tuple[str, ...] = ()


def _now() -> datetime:
    return datetime.now(UTC)


class KeyStore:
    """The key file: loaded, rotated, saved. Holds private keys: never logged, never in a repr."""

    def __init__(self, path: Path, keys: list[SigningKey]) -> None:
        self.path = path
        self.keys = keys
        self._check()

    def __repr__(self) -> str:
        return f"KeyStore({str(self.path)!r}, kids={[k.kid for k in self.keys]})"

    # -- loading and saving --

    @classmethod
    def load(cls, path: Path) -> KeyStore:
        hint = "create it: start `credo server --oidc-issuer URL`, or `credo oidc rotate` on the server host"
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise EnvironmentProblem(f"no OIDC key store at {path}", hint=hint) from None
        except OSError as exc:
            raise EnvironmentProblem(
                f"cannot read the OIDC key store {path}: {exc.strerror}",
                hint="run as root (or the server's user) on the server host: the key store is 0600",
            ) from None
        try:
            data = json.loads(text)
            if data.get("format") != _FORMAT:
                raise ValueError(f"unknown format {data.get('format')!r}")
            keys = [
                SigningKey(
                    kid=entry["kid"],
                    state=entry["state"],
                    created_at=datetime.fromisoformat(entry["created_at"]),
                    key=RSAKey.import_key(entry["pem"], {"kid": entry["kid"]}),
                    retire_at=datetime.fromisoformat(entry["retire_at"]) if entry.get("retire_at") else None,
                )
                for entry in data["keys"]
            ]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # The message names the file, never its content.
            raise EnvironmentProblem(
                f"the OIDC key store {path} is damaged ({type(exc).__name__})",
                hint="restore it from backup; a new store means new keys, published before use",
            ) from None
        return cls(path, keys)

    @classmethod
    def create(cls, path: Path, now: datetime | None = None) -> KeyStore:
        stamp = now or _now()
        current, upcoming = generate_key(), generate_key()
        store = cls(
            path,
            [
                SigningKey(upcoming.kid or "", "next", stamp, upcoming),
                SigningKey(current.kid or "", "current", stamp, current),
            ],
        )
        store.save()
        return store

    @classmethod
    def open(cls, path: Path, *, create: bool = False) -> KeyStore:
        """Load the store; with ``create``, make it (two new keys) if it does not exist yet."""
        if create and not path.exists():
            with _locked(path):
                if not path.exists():
                    return cls.create(path)
        return cls.load(path)

    def save(self) -> None:
        data = {
            "format": _FORMAT,
            "keys": [
                k.summary()
                | {"pem": k.key.as_pem(private=True).decode()}  # PKCS#8, unencrypted: the file is 0600
                for k in self.keys
            ],
        }
        write_text_atomically(
            self.path, json.dumps(data, indent=1) + "\n", mode=0o600,
            hint="the key store's directory must be writable by this user (root or the server's)",
        )  # fmt: skip

    # -- reading --

    def _check(self) -> None:
        states = [k.state for k in self.keys]
        if states.count("current") != 1 or states.count("next") != 1 or not set(states) <= set(_STATES):
            raise EnvironmentProblem(
                f"the OIDC key store {self.path} must hold one current and one next key",
                hint="restore it from backup",
            )

    def by_state(self, state: str) -> SigningKey:
        return next(k for k in self.keys if k.state == state)

    @property
    def current(self) -> SigningKey:
        return self.by_state("current")

    @property
    def upcoming(self) -> SigningKey:
        return self.by_state("next")

    def published(self, now: datetime | None = None) -> list[SigningKey]:
        """The keys in the JWKS: next, current, then retired ones not yet past retire_at (newest first)."""
        stamp = now or _now()
        retired = sorted(
            (k for k in self.keys if k.state == "retired" and k.retire_at and k.retire_at > stamp),
            key=lambda k: k.created_at,
            reverse=True,
        )
        return [self.upcoming, self.current, *retired][:MAX_PUBLISHED]

    def jwks(self, now: datetime | None = None) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self.published(now)]}

    # -- changing --

    def prune(self, now: datetime | None = None) -> list[str]:
        """Drop retired keys past their retire_at; return their kids."""
        stamp = now or _now()
        gone = [
            k for k in self.keys if k.state == "retired" and (k.retire_at is None or k.retire_at <= stamp)
        ]
        self.keys = [k for k in self.keys if k not in gone]
        return [k.kid for k in gone]

    def rotate(self, now: datetime | None = None, *, force: bool = False) -> Rotation:
        """Promote next to current, retire current, make a new next (in memory: then ``save``)."""
        stamp = now or _now()
        self.prune(stamp)
        upcoming, current = self.upcoming, self.current
        ready = upcoming.created_at + timedelta(seconds=CACHE_MARGIN)
        if stamp < ready and not force:
            raise Conflict(
                f"the next key {upcoming.kid} has been published only since "
                f"{upcoming.created_at:%Y-%m-%d %H:%M:%S} UTC: clouds may not have fetched it yet",
                hint=f"rotate after {ready:%Y-%m-%d %H:%M:%S} UTC (publish the documents first), "
                "or --force (tokens it signs may fail until caches refresh)",
            )
        retired = [k for k in self.keys if k.state == "retired"]
        dropped: list[str] = []
        # After rotation: next, current, the old current and the retired ones: at most MAX_PUBLISHED.
        room = MAX_PUBLISHED - 3
        if len(retired) > room:
            if not force:
                first = min(k.retire_at for k in retired if k.retire_at)
                raise Conflict(
                    f"rotating now would publish {len(retired) + 3} keys (at most {MAX_PUBLISHED})",
                    hint=f"rotate after {first:%Y-%m-%d %H:%M:%S} UTC, when a retired key expires, or --force "
                    "(drops the oldest retired key: tokens it signed stop verifying)",
                )
            retired.sort(key=lambda k: k.created_at)
            dropped = [k.kid for k in retired[: len(retired) - room]]
        retire_at = stamp + timedelta(seconds=MAX_TOKEN_LIFETIME + CACHE_MARGIN)
        fresh = generate_key()
        self.keys = [
            SigningKey(fresh.kid or "", "next", stamp, fresh),
            replace(upcoming, state="current"),
            replace(current, state="retired", retire_at=retire_at),
            *(k for k in self.keys if k.state == "retired" and k.kid not in dropped),
        ]
        self._check()
        return Rotation(upcoming.kid, fresh.kid or "", current.kid, retire_at, tuple(dropped))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive flock on ``<path>.lock``: the server's first start and ``credo oidc rotate``
    never write the store at once."""
    lock = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT, 0o600)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot create {lock}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def rotate_file(path: Path, now: datetime | None = None, *, force: bool = False) -> Rotation:
    """Rotate the store at ``path`` under its lock, and save it."""
    with _locked(path):
        store = KeyStore.load(path)
        rotation = store.rotate(now, force=force)
        store.save()
        return rotation


def prune_file(path: Path, now: datetime | None = None) -> list[str]:
    with _locked(path):
        store = KeyStore.load(path)
        gone = store.prune(now)
        if gone:
            store.save()
        return gone
