"""Which password goes to which kvno, inside and outside the pre-rotation window (unit level)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from credo.gmsa.account import ManagedServiceAccount
from credo.gmsa.blob import ManagedPasswordBlob
from credo.gmsa.retrieval import ManagedPassword

CURRENT = "current-password".encode("utf-16-le")
PREVIOUS = "previous-password".encode("utf-16-le")
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def account(kvno: int) -> ManagedServiceAccount:
    return ManagedServiceAccount(
        dn="CN=svc,CN=Managed Service Accounts,DC=x", sam_account_name="svc$", sid="S-1-5-21-1-2-3-4",
        group_managed=True, enabled=True, dns_host_name=None, spns=(), allowed_sids=(), supported_enctypes=24,
        interval_days=30, kvno=kvno, password_id=None, previous_password_id=None, when_created=None,
        password_last_set=None, description=None, linked_computers=(),
    )  # fmt: skip


def password(kvno: int, query: timedelta, unchanged: timedelta, previous: bytes | None) -> ManagedPassword:
    blob = ManagedPasswordBlob(CURRENT, previous, query, unchanged)
    return ManagedPassword(account=account(kvno), blob=blob, retrieved_at=NOW)


def test_normal_current_at_kvno_previous_below() -> None:
    mp = password(3, timedelta(days=10), timedelta(days=10) - timedelta(minutes=5), PREVIOUS)
    assert not mp.in_pre_rotation_window
    assert mp.password_versions() == [(3, CURRENT), (2, PREVIOUS)]
    assert mp.authentication_password() == CURRENT
    assert mp.next_rotation == NOW + timedelta(days=10)
    assert mp.refresh_after == NOW + timedelta(days=10) - timedelta(minutes=5)


def test_window_future_at_kvno_plus_one_and_still_valid_at_kvno() -> None:
    # Inside the last five minutes: unchanged = query + rollover - 5 min > query.
    mp = password(3, timedelta(minutes=3), timedelta(days=30, minutes=-2), PREVIOUS)
    assert mp.in_pre_rotation_window
    assert mp.password_versions() == [(4, CURRENT), (3, PREVIOUS)]
    assert mp.authentication_password() == PREVIOUS
    assert mp.refresh_after == NOW + timedelta(minutes=3)


def test_first_password_has_no_previous() -> None:
    mp = password(1, timedelta(days=30), timedelta(days=30, minutes=-5), None)
    assert mp.password_versions() == [(1, CURRENT)]


def test_reprs_hold_no_password() -> None:
    mp = password(3, timedelta(days=10), timedelta(days=9), PREVIOUS)
    text = repr(mp) + repr(mp.blob)
    assert "current-password" not in text and CURRENT.hex() not in text
