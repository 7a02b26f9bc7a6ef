"""Fuzzing the credentials any HTTP caller may send before it is known: a worker session token
(a JWT, ``Authorization: Bearer``), the web UI's session cookie, the admin token, API tokens, and
the lifetime a token or webhook is created with.

Headers reach these as ASGI decodes them (latin-1: any character up to U+00FF). A credential
that is not right is refused (None or False), never an exception: the gate would answer it with a
500, before any route could.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from credo.automation.api_tokens import TokenRecord, new_token, parse_lifetime, token_id, verify_token
from credo.errors import InputError
from credo.server.auth import SESSION_KEY_FILE, AdminToken, SessionTokens
from credo.server.gate import Caller, CallerKind
from credo.server.ui.session import SessionCookies
from tests.fuzz.helpers import FUZZ, FUZZ_DOCUMENTS, typed_only

# What a header value can hold once ASGI decoded it.
header_text = st.text(st.characters(max_codepoint=0xFF), max_size=80)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-credentials")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=5,
)
# A JWT's header and claims: the names JOSE and credo read, with any JSON values.
headers = st.fixed_dictionaries(
    {"alg": st.one_of(st.just("HS256"), json_values)},
    optional={k: json_values for k in ("crit", "kid", "b64", "typ", "jku", "jwk", "x5c", "zip", "enc")},
)
claims = st.fixed_dictionaries(
    {},
    optional={
        "sub": st.one_of(st.just("WORKER1$@CORP.EXAMPLE.TEST"), json_values),
        "aud": st.one_of(st.just("credo worker session"), json_values),
        "exp": st.one_of(st.just(2**40), json_values),
        **{k: json_values for k in ("iat", "nbf", "iss", "jti")},
    },
)


@FUZZ_DOCUMENTS
@given(
    st.one_of(
        header_text,
        st.tuples(headers, claims, st.booleans()),
        st.tuples(st.binary(max_size=20), st.binary(max_size=20), st.booleans()),
    )
)
@example(({"alg": "HS256", "crit": None}, {"sub": "x"}, False))  # joserfc iterates crit: TypeError
@example(({"alg": "HS256", "crit": 1}, {"sub": "x"}, True))
def test_worker_session_tokens(data_dir: Path, token: str | tuple[object, object, bool]) -> None:
    sessions = SessionTokens(data_dir / SESSION_KEY_FILE)
    if not isinstance(token, str):
        header, payload, signed = token
        parts = [json.dumps(p).encode() if not isinstance(p, bytes) else p for p in (header, payload)]
        body = ".".join(_b64(p) for p in parts)
        key = (data_dir / SESSION_KEY_FILE).read_text().strip().encode()
        tag = hmac.new(key, body.encode(), hashlib.sha256).digest() if signed else b"\0" * 32
        token = f"{body}.{_b64(tag)}"
    result = sessions.principal(token)
    assert result is None or isinstance(result, str)


@FUZZ
@given(st.one_of(header_text, st.tuples(st.integers(0, 200), st.integers(0, 4), header_text)))
@example("a.\u00e9")  # hmac.compare_digest of a str that is not ASCII: TypeError
@example("\u00e9.b")
def test_ui_session_cookies(data_dir: Path, cookie: str | tuple[int, int, str]) -> None:
    cookies = SessionCookies(data_dir, "fingerprint")
    if not isinstance(cookie, str):
        position, removed, inserted = cookie
        valid = cookies.issue(Caller(CallerKind.USER, "jdoe@CORP.EXAMPLE.TEST"))
        cookie = valid[:position] + inserted + valid[position + removed :]
    result = cookies.open(cookie)
    assert result is None or isinstance(result, dict)


@FUZZ
@given(header_text)
def test_admin_tokens(data_dir: Path, presented: str) -> None:
    assert isinstance(AdminToken(data_dir / "admin.token").check(presented), bool)


NOW = datetime(2026, 1, 1, tzinfo=UTC)
TOKEN, RECORD = new_token("ci", timedelta(days=1), NOW)


@FUZZ
@given(st.one_of(header_text, st.tuples(st.integers(0, len(TOKEN)), header_text)))
def test_api_tokens(presented: str | tuple[int, str]) -> None:
    if not isinstance(presented, str):
        position, inserted = presented
        presented = TOKEN[:position] + inserted + TOKEN[position + len(inserted) :]
    token_id(presented)
    found = verify_token(presented, lambda i: RECORD if i == RECORD.id else None, NOW)
    assert found is None or isinstance(found, TokenRecord)


@FUZZ
@given(st.one_of(
    st.text(max_size=12),
    st.tuples(st.text("0123456789", min_size=1, max_size=30), st.sampled_from("mhdwy")).map("".join),
))  # fmt: skip
@example("9" * 5000 + "d")  # int() of more than 4300 digits: ValueError
@example("99999999999999999999w")  # timedelta over 999999999 days: OverflowError
@example("\n999999d")  # the message would hold the line break
def test_lifetimes(text: str) -> None:
    result = typed_only(parse_lifetime, text)
    assert isinstance(result, timedelta | InputError)
