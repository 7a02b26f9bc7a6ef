"""The key store: RFC 7638 kids, 0600 atomic file, rotation rules (next published before use,
the old key kept until every token it signed has expired plus the margin, at most 4 keys)."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt as pyjwt
import pytest

from credo.automation.identity import MAX_TOKEN_LIFETIME
from credo.errors import Conflict, EnvironmentProblem
from credo.oidc.keys import CACHE_MARGIN, MAX_PUBLISHED, KeyStore, rotate_file
from credo.oidc.tokens import JobClaims, mint

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CLAIMS = JobClaims("tier1", "job", "hello", "ab" * 32, "WORKER1$@CORP.EXAMPLE.TEST", None)


def rfc7638(jwk: dict[str, str]) -> str:
    """RFC 7638 §3: SHA-256 of the required members in lexicographic order, no whitespace."""
    canonical = json.dumps(
        {"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True
    )
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def verify(token: str, jwks: dict[str, object], audience: str = "aud") -> dict[str, object]:
    """PyJWT, independently of credo's joserfc."""
    kid = pyjwt.get_unverified_header(token)["kid"]
    keys = {k.key_id: k for k in pyjwt.PyJWKSet.from_dict(jwks).keys}
    return pyjwt.decode(
        token, keys[kid].key, algorithms=["RS256"], audience=audience, options={"verify_exp": False}
    )


def test_a_new_store_has_a_current_and_a_published_next_key_in_a_0600_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    store = KeyStore.open(path, create=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    jwks = store.jwks()
    assert [k["kid"] for k in jwks["keys"]] == [store.upcoming.kid, store.current.kid]
    for jwk in jwks["keys"]:
        assert set(jwk) == {"kty", "kid", "use", "alg", "n", "e"}
        assert (jwk["kty"], jwk["use"], jwk["alg"]) == ("RSA", "sig", "RS256")
        assert jwk["kid"] == rfc7638(jwk)
        assert len(base64.urlsafe_b64decode(jwk["n"] + "==")) * 8 == 2048
    assert KeyStore.load(path).current.kid == store.current.kid
    assert "PRIVATE" not in repr(store) and "PRIVATE" not in repr(store.current)
    assert not list(tmp_path.glob(".keys.json.*"))  # no temp file left


def test_rotation_keeps_the_old_key_until_its_tokens_expired_plus_the_margin(tmp_path: Path) -> None:
    store = KeyStore.create(tmp_path / "keys.json", now=T0)
    first, second = store.current, store.upcoming
    old_token = mint(
        first, issuer="https://i", subject="s", audience="aud", lifetime=3600, claims=CLAIMS, now=T0
    )

    # The next key has been published since T0: rotating sooner could sign with a key that a
    # cloud's cached JWKS does not have yet.
    with pytest.raises(Conflict, match="published only since"):
        store.rotate(T0 + timedelta(seconds=CACHE_MARGIN - 1))
    at = T0 + timedelta(seconds=CACHE_MARGIN)
    rotation = store.rotate(at)
    assert (rotation.current, rotation.retired) == (second.kid, first.kid)
    assert rotation.retire_at == at + timedelta(seconds=MAX_TOKEN_LIFETIME + CACHE_MARGIN)
    assert store.current.kid == second.kid  # signs with the key published an hour ago
    published = [k.kid for k in store.published(at)]
    assert published == [rotation.next, second.kid, first.kid]
    # A token the old key signed still verifies against the JWKS of after the rotation.
    assert verify(old_token.token, store.jwks(at))["sub"] == "s"
    # Still published just before retire_at, gone (and pruned) from then on.
    assert first.kid in [k.kid for k in store.published(rotation.retire_at - timedelta(seconds=1))]
    assert first.kid not in [k.kid for k in store.published(rotation.retire_at)]
    assert store.prune(rotation.retire_at) == [first.kid]
    assert first.kid not in [k.kid for k in store.keys]


def test_never_more_than_four_keys_published(tmp_path: Path) -> None:
    store = KeyStore.create(tmp_path / "keys.json", now=T0)
    at = T0
    # Hourly rotations (as often as the margin allows) for a day: retired keys expire as fast as
    # they come.
    for _ in range(24):
        at += timedelta(seconds=CACHE_MARGIN)
        store.rotate(at)
        assert len(store.jwks(at)["keys"]) <= MAX_PUBLISHED
    # Emergency rotations (--force) in a row: the oldest retired key is dropped, and said so.
    dropped: list[str] = []
    for _ in range(4):
        dropped += store.rotate(at, force=True).dropped
        assert len(store.keys) <= MAX_PUBLISHED and len(store.jwks(at)["keys"]) <= MAX_PUBLISHED
    assert dropped


def test_rotate_file_is_saved_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    before = KeyStore.create(path, now=T0 - timedelta(hours=2))
    rotation = rotate_file(path)
    after = KeyStore.load(path)
    assert after.current.kid == before.upcoming.kid == rotation.current
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_damaged_store_names_the_file_never_its_content(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    store = KeyStore.create(path)
    text = path.read_text()
    path.write_text(text.replace(store.current.kid, "x", 1)[:-200])
    with pytest.raises(EnvironmentProblem) as caught:
        KeyStore.load(path)
    assert "damaged" in caught.value.message and "PRIVATE" not in caught.value.message
    with pytest.raises(EnvironmentProblem, match="no OIDC key store"):
        KeyStore.load(tmp_path / "none.json")
