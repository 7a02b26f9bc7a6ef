"""Webhook signatures, secret storage, rotation, replay window and the rate limiter."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from credo.automation.webhooks import (
    MAX_BODY_BYTES,
    REPLAY_WINDOW,
    SECRET_PREFIX,
    Outcome,
    ReplayGuard,
    SealError,
    SecretSealer,
    SigningKeys,
    TokenBucket,
    WebhookState,
    check_call,
    hash_url_token,
    new_sealing_key,
    new_signing_secret,
    new_url_token,
    sign,
    signature_header,
)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
T = int(NOW.timestamp())
SECRET = "credo_whsec_test"
BODY = b'{"event":"ping"}'


def state(**kw: object) -> WebhookState:
    return WebhookState(keys=kw.pop("keys", SigningKeys(SECRET)), **kw)  # type: ignore[arg-type]


def test_documented_test_vector_matches_openssl() -> None:
    assert signature_header([SECRET], 1700000000, BODY) == (
        "t=1700000000,v1=a7c96684607395c86f579b1074df710b78511d556bc2ce74b525e660ddd793be"
    )
    openssl = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hmac", SECRET],
        input=b"1700000000." + BODY,
        capture_output=True,
        check=True,
    )
    assert openssl.stdout.decode().split("= ")[1].strip() == sign(SECRET, 1700000000, BODY)


def test_signed_call_is_ok() -> None:
    outcome, _ = check_call(state(), signature_header([SECRET], T, BODY), BODY, NOW)
    assert outcome is Outcome.OK and outcome.http_status == 202


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, Outcome.UNSIGNED),
        ("", Outcome.UNSIGNED),
        ("garbage", Outcome.BAD_SIGNATURE),
        (f"t={T}", Outcome.BAD_SIGNATURE),  # no v1
        (f"v1={'0' * 64}", Outcome.BAD_SIGNATURE),  # no t
        (f"t={T},v1={'0' * 64}", Outcome.BAD_SIGNATURE),
        (f"t={T},v1={sign(SECRET, T, BODY).upper()}", Outcome.BAD_SIGNATURE),  # lowercase hex only
        (f"t=-{T},v1={sign(SECRET, T, BODY)}", Outcome.BAD_SIGNATURE),
        (f"t={T}.5,v1={sign(SECRET, T, BODY)}", Outcome.BAD_SIGNATURE),
        (f"t={T},t={T},v1={sign(SECRET, T, BODY)}", Outcome.BAD_SIGNATURE),
        (f"t={T},v1={sign('other', T, BODY)}", Outcome.BAD_SIGNATURE),
        (f"t={T + 1},v1={sign(SECRET, T, BODY)}", Outcome.BAD_SIGNATURE),  # t is signed
        (f" t={T} , v0=abc, v1={sign(SECRET, T, BODY)} ", Outcome.OK),  # blanks, unknown scheme
        (f"t={T},v1={'0' * 64},v1={sign(SECRET, T, BODY)}", Outcome.OK),  # any v1 may match
    ],
)
def test_header_forms(header: str | None, expected: Outcome) -> None:
    assert check_call(state(), header, BODY, NOW)[0] is expected


def test_body_is_signed() -> None:
    header = signature_header([SECRET], T, BODY)
    assert check_call(state(), header, BODY + b" ", NOW)[0] is Outcome.BAD_SIGNATURE


@pytest.mark.parametrize("skew", [-REPLAY_WINDOW, REPLAY_WINDOW, 0])
def test_inside_the_window_both_directions(skew: int) -> None:
    header = signature_header([SECRET], T + skew, BODY)
    assert check_call(state(), header, BODY, NOW)[0] is Outcome.OK


@pytest.mark.parametrize("skew", [-REPLAY_WINDOW - 1, REPLAY_WINDOW + 1, -86400])
def test_outside_the_window_is_a_replay(skew: int) -> None:
    header = signature_header([SECRET], T + skew, BODY)
    outcome, _ = check_call(state(), header, BODY, NOW)
    assert outcome is Outcome.REPLAYED and outcome.http_status == 404


def test_same_signature_twice_is_a_replay_and_forgotten_after_the_window() -> None:
    guard = ReplayGuard()
    header = signature_header([SECRET], T, BODY)
    assert check_call(state(), header, BODY, NOW, replay_guard=guard)[0] is Outcome.OK
    assert (
        check_call(state(), header, BODY, NOW + timedelta(seconds=1), replay_guard=guard)[0]
        is Outcome.REPLAYED
    )
    # A fresh timestamp is a new call.
    again = signature_header([SECRET], T + 1, BODY)
    assert check_call(state(), again, BODY, NOW + timedelta(seconds=1), replay_guard=guard)[0] is Outcome.OK
    later = NOW + timedelta(seconds=REPLAY_WINDOW + 2)
    assert check_call(state(), header, BODY, later, replay_guard=guard)[0] is Outcome.REPLAYED  # by window
    assert len(guard) == 2
    assert not guard.seen(sign(SECRET, T, BODY), later.timestamp())
    assert len(guard) == 0  # both entries left the window and were dropped


def test_disabled_and_expired_refuse_even_good_signatures() -> None:
    header = signature_header([SECRET], T, BODY)
    assert check_call(state(enabled=False), header, BODY, NOW)[0] is Outcome.DISABLED
    assert check_call(state(expires_at=NOW), header, BODY, NOW)[0] is Outcome.EXPIRED
    assert check_call(state(expires_at=NOW + timedelta(seconds=1)), header, BODY, NOW)[0] is Outcome.OK
    assert {o.http_status for o in Outcome if o not in (Outcome.OK, Outcome.RATE_LIMITED)} == {404}


def test_rotation_keeps_the_previous_secret_until_the_deadline() -> None:
    new = new_signing_secret()
    keys = SigningKeys(SECRET).rotate(new, NOW, timedelta(hours=1))
    old_call = signature_header([SECRET], T, BODY)
    new_call = signature_header([new], T, BODY)
    assert check_call(state(keys=keys), old_call, BODY, NOW)[0] is Outcome.OK
    assert check_call(state(keys=keys), new_call, BODY, NOW)[0] is Outcome.OK
    later = NOW + timedelta(hours=1)
    old_later = signature_header([SECRET], int(later.timestamp()), BODY)
    assert check_call(state(keys=keys), old_later, BODY, later)[0] is Outcome.BAD_SIGNATURE
    # Rotating again drops the oldest; overlap 0 accepts the new one only.
    third = new_signing_secret()
    keys = keys.rotate(third, NOW, timedelta(0))
    assert keys.accepted(NOW) == (third,)
    with pytest.raises(ValueError):
        keys.rotate(new, NOW, timedelta(seconds=-1))


def test_secrets_never_show_in_reprs() -> None:
    keys = SigningKeys(SECRET).rotate("credo_whsec_next", NOW)
    text = repr(state(keys=keys)) + repr(SecretSealer([new_sealing_key()]))
    assert "credo_whsec" not in text


def test_rate_limit_takes_only_signed_calls() -> None:
    bucket = TokenBucket.full(capacity=2, rate=0.5, now=NOW.timestamp())
    hook = state(bucket=bucket)
    outcomes = []
    for i in range(3):
        # An unsigned call in between does not use up the budget.
        outcome, bucket = check_call(hook, None, BODY, NOW)
        assert outcome is Outcome.UNSIGNED
        hook = state(bucket=bucket)
        outcome, bucket = check_call(hook, signature_header([SECRET], T + i, BODY), BODY, NOW)
        hook = state(bucket=bucket)
        outcomes.append(outcome)
    assert outcomes == [Outcome.OK, Outcome.OK, Outcome.RATE_LIMITED]
    assert Outcome.RATE_LIMITED.http_status == 429
    assert bucket is not None and bucket.retry_after(NOW.timestamp()) == pytest.approx(2.0)
    later = NOW + timedelta(seconds=2)
    assert check_call(hook, signature_header([SECRET], T + 9, BODY), BODY, later)[0] is Outcome.OK


def test_rate_limited_call_can_be_sent_again() -> None:
    guard = ReplayGuard()
    bucket = TokenBucket.full(1, 1.0, NOW.timestamp())
    first, bucket = check_call(
        state(bucket=bucket), signature_header([SECRET], T, BODY), BODY, NOW, replay_guard=guard
    )
    header = signature_header([SECRET], T + 1, BODY)
    limited, bucket = check_call(state(bucket=bucket), header, BODY, NOW, replay_guard=guard)
    retried, _ = check_call(
        state(bucket=bucket), header, BODY, NOW + timedelta(seconds=1), replay_guard=guard
    )
    assert (first, limited, retried) == (Outcome.OK, Outcome.RATE_LIMITED, Outcome.OK)


@given(
    capacity=st.integers(1, 20),
    rate=st.floats(0.01, 50),
    gaps=st.lists(st.floats(0, 5), min_size=1, max_size=200),
)
def test_token_bucket_never_allows_more_than_capacity_plus_refill(
    capacity: int, rate: float, gaps: list[float]
) -> None:
    now = 1_000_000.0
    bucket = TokenBucket.full(capacity, rate, now)
    allowed = 0
    for gap in gaps:
        now += gap
        ok, bucket = bucket.take(now)
        allowed += ok
        assert 0 <= bucket.tokens <= capacity
    assert allowed <= capacity + rate * (now - 1_000_000.0) + 1e-6


def test_token_bucket_clock_stepping_back_refills_nothing() -> None:
    bucket = TokenBucket.full(1, 1.0, 100.0)
    ok, bucket = bucket.take(100.0)
    assert ok
    ok, bucket = bucket.take(50.0)
    assert not ok and bucket.updated == 100.0


def test_url_token_and_secret_generation() -> None:
    tokens = {new_url_token() for _ in range(50)}
    assert len(tokens) == 50 and all(len(t) >= 43 for t in tokens)  # 32 bytes, base64url
    token = next(iter(tokens))
    assert hash_url_token(token) == "sha256:" + hashlib.sha256(token.encode()).hexdigest()
    secret = new_signing_secret()
    assert secret.startswith(SECRET_PREFIX) and len(secret) >= len(SECRET_PREFIX) + 43


def test_sealing_round_trip_binds_context_and_rotates_keys() -> None:
    old_key, new_key = new_sealing_key(), new_sealing_key()
    sealed = SecretSealer([old_key]).seal(SECRET, context="webhook:7")
    assert SECRET not in sealed and sealed.startswith(f"v1.{SecretSealer.key_id(old_key)}.")
    assert SecretSealer([old_key]).open(sealed, context="webhook:7") == SECRET
    # Sealing twice gives different text (random nonce).
    assert SecretSealer([old_key]).seal(SECRET, context="webhook:7") != sealed
    # Another row's id does not open it.
    with pytest.raises(SealError, match="does not open"):
        SecretSealer([old_key]).open(sealed, context="webhook:8")
    # A server with a new key first still opens old seals, and seals with the new key.
    rotated = SecretSealer([new_key, old_key])
    assert rotated.open(sealed, context="webhook:7") == SECRET
    assert rotated.seal(SECRET, context="webhook:7").split(".")[1] == SecretSealer.key_id(new_key)
    # A server without the key says so, without the secret.
    with pytest.raises(SealError, match="key this server does not have") as info:
        SecretSealer([new_key]).open(sealed, context="webhook:7")
    assert info.value.hint and SECRET not in str(info.value)
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(SealError):
        SecretSealer([old_key]).open(tampered, context="webhook:7")
    with pytest.raises(ValueError):
        SecretSealer([b"short"])


def test_body_cap_is_the_parameter_cap() -> None:
    assert MAX_BODY_BYTES == 512 * 1024


def test_compare_is_hmac_compare_digest() -> None:
    # The documented scheme, computed independently.
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, T, BODY) == expected
