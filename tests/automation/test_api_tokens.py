"""API tokens: shown once, found by id, checked by hash, refused alike when wrong, expired or revoked."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from credo.automation.api_tokens import new_token, parse_lifetime, token_id, verify_token
from credo.errors import InputError

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_a_token_verifies_until_it_expires_or_is_revoked() -> None:
    token, record = new_token("nightly-ci", parse_lifetime("90d"), NOW)
    assert token.startswith("credo_") and token_id(token) == record.id
    assert token not in repr(record) and record.sha256 not in repr(record)
    store = {record.id: record}
    assert verify_token(token, store.get, NOW) == record
    assert verify_token(token, store.get, NOW + timedelta(days=90)) is None
    assert verify_token(token[:-1] + ("A" if token[-1] != "A" else "B"), store.get, NOW) is None
    store[record.id] = dataclasses.replace(record, revoked=True)
    assert verify_token(token, store.get, NOW) is None
    assert verify_token("not-a-token", store.get, NOW) is None


@pytest.mark.parametrize("text", ["", "90", "0m", "400d", "1y", "-1d", "3 d"])
def test_bad_lifetimes_are_refused(text: str) -> None:
    with pytest.raises(InputError):
        parse_lifetime(text)


def test_lifetimes() -> None:
    assert parse_lifetime("30m") == timedelta(minutes=30)
    assert parse_lifetime("2w") == timedelta(weeks=2)
