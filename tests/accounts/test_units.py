"""Pure logic of credo.accounts: parameter blobs, SDDL, the membership descriptor, validation."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest

from credo.accounts.kds import (
    DH_PARAMETERS,
    KDF_PARAMETERS_SHA512,
    RootKey,
    datetime_to_filetime,
    filetime_to_datetime,
)
from credo.accounts.service_accounts import membership_descriptor
from credo.accounts.validation import (
    parse_account_enctypes,
    validate_dns_host_name,
    validate_interval,
    validate_spns,
)
from credo.ad.security import Ace, SecurityDescriptor, sddl_rights, to_sddl
from credo.errors import InputError

HYBRID = "S-1-5-21-4274618674-651299007-1605147360-1109"
ADMIN = "S-1-5-21-4274618674-651299007-1605147360-500"
# msDS-GroupMSAMembership as `samba-tool service-account group-msa-membership add` left it on a
# lab gMSA (Samba's default ACE for the domain Administrator, then HybridWorkers).
SAMBA_WRITTEN = bytes.fromhex(
    "010004801400000000000000000000002400000001020000000000052000000020020000040050000200000000002400"
    "ff010f000105000000000005150000003281c9febf08d226e09aac5ff401000000002400ff010f000105000000000005"
    "150000003281c9febf08d226e09aac5f55040000"
)


def test_kdf_parameters_are_ms_gkdi_2_2_2_for_sha512() -> None:
    # The value Windows and Samba store: 00000000 01000000 0e000000 00000000 "SHA512\0" (UTF-16LE).
    assert KDF_PARAMETERS_SHA512.hex() == "00000000010000000e000000000000005300480041003500310032000000"


def test_dh_parameters_are_a_dhpm_blob_of_the_rfc5114_group() -> None:
    size, magic, key_length = struct.unpack_from("<I4sI", DH_PARAMETERS)
    assert (size, magic, key_length) == (524, b"DHPM", 256) and len(DH_PARAMETERS) == 524
    p = int.from_bytes(DH_PARAMETERS[12:268], "big")
    g = int.from_bytes(DH_PARAMETERS[268:], "big")
    # RFC 5114 2.3: q is a 256-bit prime dividing p-1, and g generates the order-q subgroup.
    q = int("8CF83642A709A097B447997640129DA299B1A47D1EB3750BA308B0FE64F5FBD3", 16)
    assert p.bit_length() == 2048 and (p - 1) % q == 0
    assert pow(g, q, p) == 1 and g != 1


def test_membership_descriptor_is_what_samba_writes_for_the_same_principals() -> None:
    descriptor = membership_descriptor([ADMIN, HYBRID])
    assert descriptor.pack() == SAMBA_WRITTEN
    assert to_sddl(descriptor) == (
        f"O:BAD:(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;{ADMIN})(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;{HYBRID})"
    )
    assert SecurityDescriptor.unpack(SAMBA_WRITTEN).allowed_sids == [ADMIN, HYBRID]


def test_sddl_rendering_of_flags_masks_and_aliases() -> None:
    assert sddl_rights(0xF01FF) == "CCDCLCSWRPWPDTLOCRSDRCWDWO"
    assert sddl_rights(0x30) == "RPWP"
    assert sddl_rights(0x10000000) == "GA"
    assert sddl_rights(0x00200000) == "0x200000"  # a bit without a letter
    sd = SecurityDescriptor(
        owner="S-1-5-18",
        group="S-1-5-32-544",
        dacl=(Ace(1, 0x02, 0x20, "S-1-1-0"), Ace(0, 0x12, 0x10, "S-1-5-11")),
        control=0x8004 | 0x1000,
    )
    assert to_sddl(SecurityDescriptor.unpack(sd.pack())) == "O:SYG:BAD:P(D;CI;WP;;;WD)(A;CIID;RP;;;AU)"


def test_filetime_round_trip() -> None:
    moment = datetime(2026, 11, 22, 23, 5, 38, 975753, tzinfo=UTC)
    assert filetime_to_datetime(datetime_to_filetime(moment)) == moment
    assert datetime_to_filetime(datetime(1601, 1, 1, tzinfo=UTC)) == 0


def test_root_key_usable_ten_hours_after_its_start() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    key = RootKey("g", "dn", 1, "SP800_108_CTR_HMAC", "DH", None, start, start)
    assert not key.usable_at(datetime(2026, 1, 1, 9, 59, tzinfo=UTC))
    assert key.usable_at(datetime(2026, 1, 1, 10, 0, tzinfo=UTC))
    assert key.as_dict(datetime(2026, 1, 2, tzinfo=UTC))["usable_now"] is True
    assert "data" not in repr(key).lower()


@pytest.mark.parametrize(
    ("value", "bits"),
    [("AES128,AES256", 24), ("aes256", 16), (" AES128 ", 8)],
)
def test_strong_enctypes(value: str, bits: int) -> None:
    assert parse_account_enctypes(value) == (bits, [])


@pytest.mark.parametrize("value", ["RC4", "AES256,RC4", "DES", "DES_CBC_CRC"])
def test_weak_enctypes_refused_unless_allowed_then_warned(value: str) -> None:
    with pytest.raises(InputError, match="weak"):
        parse_account_enctypes(value)
    bits, warnings = parse_account_enctypes(value, allow_weak=True)
    assert bits and warnings and "weak" in warnings[0]


@pytest.mark.parametrize("value", ["", "AES512", ","])
def test_unknown_or_empty_enctypes(value: str) -> None:
    with pytest.raises(InputError):
        parse_account_enctypes(value)


@pytest.mark.parametrize(
    "value", [None, "", "svcweb", "-bad.example.test", "a..b", "sp ace.example.test", "x" * 64 + ".test"]
)
def test_bad_dns_host_names(value: str | None) -> None:
    with pytest.raises(InputError):
        validate_dns_host_name(value)


def test_dns_host_name_trailing_dot_dropped() -> None:
    assert validate_dns_host_name("svc.corp.example.test.") == "svc.corp.example.test"


@pytest.mark.parametrize("days", [0, -1])
def test_interval_at_least_one_day(days: int) -> None:
    with pytest.raises(InputError, match="at least 1 day"):
        validate_interval(days)
    assert validate_interval(None) == 30 and validate_interval(1) == 1


@pytest.mark.parametrize("spns", [["HTTP"], ["HTTP/"], ["HTTP/a b"], ["HTTP/web", "http/WEB"]])
def test_bad_or_duplicate_spns(spns: list[str]) -> None:
    with pytest.raises(InputError):
        validate_spns(spns)
    assert validate_spns(["HTTP/web.example.test", "MSSQLSvc/db.example.test:1433"])
