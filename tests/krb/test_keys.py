"""Kerberos keys of a managed password: published vectors and independent cross-checks."""

from __future__ import annotations

import struct

import krb5
import pytest
from hypothesis import given
from hypothesis import strategies as st

from credo.errors import InputError
from credo.krb.keys import (
    DerivedKey,
    Enctype,
    SupportedEncryptionTypes,
    derive_keys,
    nt_hash,
    password_utf8,
    salt_for_computer_account,
)
from credo.krb.md4 import md4

# gmsad tests/test_enctypes.py (cea-sec/gmsad): RFC 3962 string-to-key of "tutu1234".
GMSAD_PASSWORD = "tutu1234"
GMSAD_SALT = "WINDOMAIN.LOCALtest_machine"
GMSAD_AES128 = bytes([176, 125, 7, 74, 140, 17, 251, 194, 222, 130, 96, 148, 78, 168, 169, 242])
GMSAD_AES256 = bytes([
    113, 254, 172, 99, 210, 210, 80, 127, 228, 42, 50, 70, 12, 182, 223, 35,
    104, 111, 204, 66, 107, 192, 29, 24, 33, 182, 239, 87, 115, 88, 24, 82,
])  # fmt: skip

RFC1320_SUITE = [
    (b"", "31d6cfe0d16ae931b73c59d7e0c089c0"),
    (b"a", "bde52cb31de33e46245e05fbdbd6fb24"),
    (b"abc", "a448017aaf21d8525fc10ae87aa6729d"),
    (b"message digest", "d9130a8164549fe818874806e1c7014b"),
    (b"abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"),
    (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "043f8582f241db351ce627e153e7f0e4"),
    (b"1234567890" * 8, "e33b4ddc9c38f2199c3e7b164fcc0536"),
]


@pytest.mark.parametrize(("message", "digest"), RFC1320_SUITE)
def test_md4_rfc1320_test_suite(message: bytes, digest: str) -> None:
    # RFC 1320 appendix A.5.
    assert md4(message).hex() == digest


def test_gmsad_aes_vectors() -> None:
    raw = GMSAD_PASSWORD.encode("utf-16-le")
    keys = derive_keys(raw, GMSAD_SALT, [18, 17])
    assert keys == [
        DerivedKey(Enctype.AES256_CTS_HMAC_SHA1_96, GMSAD_AES256),
        DerivedKey(Enctype.AES128_CTS_HMAC_SHA1_96, GMSAD_AES128),
    ]


def test_rc4_is_the_nt_hash_and_ignores_the_salt() -> None:
    raw = "password".encode("utf-16-le")
    (key,) = derive_keys(raw, "ANY.SALT", [Enctype.RC4_HMAC])
    assert key.enctype is Enctype.RC4_HMAC
    assert key.key.hex() == "8846f7eaee8fb117ad06bdd830b7586c"


@given(st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=40))
def test_md4_agrees_with_mit_rc4_string_to_key(text: str) -> None:
    # MIT computes the RC4 key as MD4(UTF-16LE(password)): an independent MD4.
    ctx = krb5.init_context()
    expected = krb5.c_string_to_key(ctx, 23, text.encode("utf-8"), b"").data
    assert nt_hash(text.encode("utf-16-le")) == expected


def _munged_pyspnego_style(raw: bytes) -> bytes:
    """The same rule said differently (pyspnego _encode_kerb_password): surrogatepass, then U+FFFD."""
    text = raw.decode("utf-16-le", "surrogatepass")
    chars = ("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else "\x01" if c == "\0" else c for c in text)
    return "".join(chars).encode("utf-8")


code_units = st.lists(st.integers(min_value=0, max_value=0xFFFF), max_size=64)


@given(code_units)
def test_password_utf8_matches_independent_rule(units: list[int]) -> None:
    raw = struct.pack(f"<{len(units)}H", *units)
    assert password_utf8(raw) == _munged_pyspnego_style(raw)


@given(code_units.filter(bool))
def test_aes_keys_use_the_munged_utf8_form(units: list[int]) -> None:
    raw = struct.pack(f"<{len(units)}H", *units)
    ctx = krb5.init_context()
    expected = krb5.c_string_to_key(ctx, 18, _munged_pyspnego_style(raw), GMSAD_SALT.encode()).data
    (key,) = derive_keys(raw, GMSAD_SALT, [18], context=ctx)
    assert key.key == expected


def test_derive_keys_keeps_order_and_drops_duplicates() -> None:
    keys = derive_keys(b"a\0b\0", "S", [23, 17, 23, 18])
    assert [k.enctype for k in keys] == [Enctype.RC4_HMAC, Enctype.AES128_CTS_HMAC_SHA1_96,
                                         Enctype.AES256_CTS_HMAC_SHA1_96]  # fmt: skip
    assert [len(k.key) for k in keys] == [16, 16, 32]


@pytest.mark.parametrize(("enctypes", "raw"), [([1], b"ab"), ([3], b"ab"), ([99], b"ab"), ([18], b"abc")])
def test_derive_keys_refuses(enctypes: list[int], raw: bytes) -> None:
    with pytest.raises(InputError):
        derive_keys(raw, "S", enctypes)


def test_derived_key_repr_hides_the_key() -> None:
    (key,) = derive_keys(GMSAD_PASSWORD.encode("utf-16-le"), GMSAD_SALT, [18])
    assert GMSAD_AES256.hex()[:8] not in repr(key)
    assert "key=" not in repr(key)


@pytest.mark.parametrize(
    ("domain", "name", "salt"),
    [
        ("contoso.com", "WEBAPP01$", "CONTOSO.COMhostwebapp01.contoso.com"),  # gmsa-on-linux.md section 3
        (
            "WINDOMAIN.LOCAL",
            "super_gmsa$",
            "WINDOMAIN.LOCALhostsuper_gmsa.windomain.local",
        ),  # gmsad test_salt
        ("Example.Test", "SvcWeb", "EXAMPLE.TESThostsvcweb.example.test"),
        ("example.test.", "svc$$", "EXAMPLE.TESThostsvc$.example.test"),
    ],
)
def test_salt_for_computer_account(domain: str, name: str, salt: str) -> None:
    assert salt_for_computer_account(domain, name) == salt


@pytest.mark.parametrize(("domain", "name"), [("", "svc$"), ("example.test", "$"), ("example.test", "")])
def test_salt_refuses_empty_parts(domain: str, name: str) -> None:
    with pytest.raises(InputError):
        salt_for_computer_account(domain, name)


def test_supported_encryption_types() -> None:
    # MS-KILE 2.2.7 bit values.
    flags = SupportedEncryptionTypes
    assert (flags.DES_CBC_CRC, flags.DES_CBC_MD5, flags.RC4_HMAC_MD5) == (1, 2, 4)
    assert (flags.AES128_CTS_HMAC_SHA1_96, flags.AES256_CTS_HMAC_SHA1_96) == (8, 0x10)
    assert flags(0x18).enctypes() == [18, 17]
    assert flags(0x1F).enctypes() == [18, 17, 23, 3, 1]
    assert flags(0x1C).names() == ["aes256-cts-hmac-sha1-96", "aes128-cts-hmac-sha1-96", "rc4-hmac"]
    assert flags(0x80018).enctypes() == [18, 17]  # other bits (e.g. AES session keys) are ignored
    assert flags.from_enctypes([18, 23]) == 0x14
    with pytest.raises(InputError):
        flags.from_enctypes([25])
