"""Fuzzing what a webhook call brings (``X-Credo-Signature`` and the body) and what the server reads
back for it (sealed signing secrets, the webhook key file).

tests/automation/test_webhooks.py checks the scheme on chosen inputs; here any header or body
must come to an ``Outcome`` (a refusal is an outcome, not an exception), the body to a job
parameter or an InputError, and a damaged sealed secret or key file to a typed error.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from credo.automation.webhooks import (
    Outcome,
    ReplayGuard,
    SealError,
    SecretSealer,
    SigningKeys,
    TokenBucket,
    WebhookState,
    check_call,
    hash_url_token,
    signature_header,
)
from credo.errors import InputError
from credo.server.webhooks import KEY_FILE, _value, load_sealer
from tests.fuzz.helpers import FUZZ, typed_only

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SECRET = "credo_whsec_fuzz"
STATE = WebhookState(SigningKeys(SECRET), bucket=TokenBucket.full(5, 1.0, NOW.timestamp()))

header_items = st.one_of(
    st.integers(0, 10**13).map(lambda t: f"t={t}"),
    st.just(f"t={int(NOW.timestamp())}"),
    st.text("0123456789abcdef", min_size=60, max_size=68).map(lambda h: f"v1={h}"),
    st.tuples(st.text(max_size=4), st.text(max_size=8)).map(lambda kv: f"{kv[0]}={kv[1]}"),
    st.sampled_from(["", "=", "t=", "v1=", " t = 1 ", "t=1\n", "v0=x", "t=\u0661\u0662", "t=" + "9" * 5000]),
    st.text(max_size=10),
)
headers = st.one_of(
    st.none(),
    st.text(max_size=80),
    st.lists(header_items, max_size=5).map(",".join),
)


@st.composite
def signed(draw: st.DrawFn) -> tuple[str, bytes]:
    """A correctly signed call, then maybe its header edited."""
    body = draw(st.binary(max_size=64))
    header = signature_header([SECRET], int(NOW.timestamp()) + draw(st.integers(-400, 400)), body)
    if draw(st.booleans()):
        position = draw(st.integers(0, len(header)))
        header = header[:position] + draw(st.text(max_size=3)) + header[position + draw(st.integers(0, 3)) :]
    return header, body


@FUZZ
@given(st.one_of(st.tuples(headers, st.binary(max_size=64)), signed()))
def test_any_call_comes_to_an_outcome(call: tuple[str | None, bytes]) -> None:
    header, body = call
    outcome, bucket = check_call(STATE, header, body, NOW, replay_guard=ReplayGuard())
    assert isinstance(outcome, Outcome) and isinstance(bucket, TokenBucket)


@FUZZ
@given(st.text(max_size=64))
def test_any_url_token_hashes(token: str) -> None:
    assert hash_url_token(token).startswith("sha256:")


json_texts = st.recursive(
    st.sampled_from(["null", "true", "1", "-1.5e3", '"x"', "NaN", "Infinity", '"\\ud800"', "1" * 5000]),
    lambda inner: st.lists(inner, max_size=3).map(lambda items: "[" + ",".join(items) + "]")
    | st.lists(inner, max_size=3).map(lambda items: "{" + ",".join(f'"k{i}":{v}' for i, v in enumerate(items)) + "}"),
    max_leaves=8,
)  # fmt: skip


@FUZZ
@given(st.one_of(st.binary(max_size=100), json_texts.map(str.encode), st.text(max_size=40).map(str.encode)))
@example(b"[" * 100_000)  # json.loads recurses per nesting level: RecursionError
@example(b'{"a":' * 5000 + b"1" + b"}" * 5000)
def test_bodies_become_a_parameter_or_an_input_error(body: bytes) -> None:
    result = typed_only(_value, body)
    assert not isinstance(result, Exception) or isinstance(result, InputError)


SEALER = SecretSealer([bytes(range(32)), bytes(range(1, 33))])
SEALED = SEALER.seal(SECRET, context="7")


@FUZZ
@given(st.one_of(
    st.text(max_size=80),
    st.tuples(st.integers(0, len(SEALED)), st.integers(0, 8), st.text(max_size=4)).map(
        lambda edit: SEALED[: edit[0]] + edit[2] + SEALED[edit[0] + edit[1] :]),
    st.binary(max_size=40).map(lambda raw: "v1." + SEALED.split(".")[1] + "." + base64.urlsafe_b64encode(raw).decode()),
))  # fmt: skip
def test_damaged_sealed_secrets(sealed: str) -> None:
    result = typed_only(SEALER.open, sealed, context="7")
    assert result == SECRET or isinstance(result, SealError)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-webhook-keys")


KEY = base64.b64encode(bytes(range(32))).decode()


@FUZZ
@given(st.one_of(
    st.text(max_size=80),
    st.binary(max_size=60),
    st.lists(st.one_of(st.just(KEY), st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()),
                       st.text("ABCabc019+/=", max_size=50)), max_size=3).map("\n".join),
))  # fmt: skip
@example("not base64!")  # base64.b64decode: binascii.Error
@example(base64.b64encode(b"short").decode())  # SecretSealer: ValueError, the key is not 32 bytes
@example("")  # no key at all: SecretSealer's ValueError
@example(b"\xff" + KEY.encode())  # not UTF-8: UnicodeDecodeError
def test_webhook_key_files(data_dir: Path, text: str | bytes) -> None:
    (data_dir / KEY_FILE).write_bytes(text if isinstance(text, bytes) else text.encode())
    result = typed_only(load_sealer, data_dir)
    assert isinstance(result, SecretSealer) or str(data_dir / KEY_FILE) in str(result)
