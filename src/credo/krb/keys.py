"""Kerberos long-term keys of a managed (gMSA) or computer account password.

Inputs and rules:

* The password is the raw UTF-16LE byte string that the DC hands out (MS-ADTS 2.2.19); it may
  contain code units that are not valid UTF-16 (lone surrogates), so it is kept as bytes.
* RC4-HMAC key (enctype 23) = NT hash = ``MD4(raw bytes)``, no decoding at all (RFC 4757 2,
  MS-NLMP 3.3.1).
* AES keys (enctypes 17, 18) = RFC 3962 string-to-key (PBKDF2-HMAC-SHA1, 4096 iterations, then
  DK) of the *UTF-8* password, which is obtained with Samba's ``UTF16_MUNGED`` rule, see
  :func:`password_utf8`. The string-to-key itself is done by MIT krb5 through pykrb5.
* Salt of a computer-like account (gMSAs are ``UF_WORKSTATION_TRUST_ACCOUNT``): MS-KILE 3.1.1.2,
  see :func:`salt_for_computer_account`. The KDC's ETYPE-INFO2 is the authoritative source.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

import krb5

from credo.errors import EnvironmentProblem, InputError
from credo.krb.md4 import md4

__all__ = [
    "DerivedKey",
    "Enctype",
    "SupportedEncryptionTypes",
    "derive_keys",
    "nt_hash",
    "password_utf8",
    "salt_for_computer_account",
]


class Enctype(enum.IntEnum):
    """Kerberos encryption type numbers (RFC 3961 8, RFC 3962 7, RFC 4757)."""

    DES_CBC_CRC = 1
    DES_CBC_MD5 = 3
    AES128_CTS_HMAC_SHA1_96 = 17
    AES256_CTS_HMAC_SHA1_96 = 18
    RC4_HMAC = 23

    @property
    def krb5_name(self) -> str:
        """The MIT krb5 spelling, as in krb5.conf and ``klist -e``."""
        return _KRB5_NAMES[self]


_KRB5_NAMES: dict[Enctype, str] = {
    Enctype.DES_CBC_CRC: "des-cbc-crc",
    Enctype.DES_CBC_MD5: "des-cbc-md5",
    Enctype.AES128_CTS_HMAC_SHA1_96: "aes128-cts-hmac-sha1-96",
    Enctype.AES256_CTS_HMAC_SHA1_96: "aes256-cts-hmac-sha1-96",
    Enctype.RC4_HMAC: "rc4-hmac",
}


# Short names of the msDS-SupportedEncryptionTypes bits, as `--enctypes` takes them and as
# PowerShell's -KerberosEncryptionType writes them (DES, RC4, AES128, AES256).
ENCTYPE_BITS = {"DES_CBC_CRC": 0x1, "DES_CBC_MD5": 0x2, "RC4": 0x4, "AES128": 0x8, "AES256": 0x10}
WEAK_ENCTYPE_BITS = 0x1 | 0x2 | 0x4


def enctype_names(bits: int | None) -> list[str]:
    """The short names of the enctype bits set in ``bits`` (msDS-SupportedEncryptionTypes)."""
    if bits is None:
        return []
    return [name for name, bit in ENCTYPE_BITS.items() if bits & bit]


class SupportedEncryptionTypes(enum.IntFlag):
    """``msDS-SupportedEncryptionTypes`` bit flags ([MS-KILE] 2.2.7).

    Only the five enctype bits are named; other bits (FAST, compound identity, claims,
    resource SID compression, AES session keys) are kept as unnamed bits when present.
    """

    DES_CBC_CRC = 0x1
    DES_CBC_MD5 = 0x2
    RC4_HMAC_MD5 = 0x4
    AES128_CTS_HMAC_SHA1_96 = 0x8
    AES256_CTS_HMAC_SHA1_96 = 0x10

    def enctypes(self) -> list[Enctype]:
        """The enctypes these flags allow, strongest first."""
        return [enctype for bit, enctype in _FLAG_TO_ENCTYPE if bit in self]

    @classmethod
    def from_enctypes(cls, enctypes: Iterable[int]) -> SupportedEncryptionTypes:
        """The flags that allow exactly ``enctypes`` (unknown numbers raise ``InputError``)."""
        result = cls(0)
        for number in enctypes:
            for bit, enctype in _FLAG_TO_ENCTYPE:
                if enctype == number:
                    result |= bit
                    break
            else:
                raise InputError(f"enctype {number} has no msDS-SupportedEncryptionTypes bit")
        return result

    def names(self) -> list[str]:
        """MIT krb5 names of the allowed enctypes, strongest first."""
        return [enctype.krb5_name for enctype in self.enctypes()]


_FLAG_TO_ENCTYPE: tuple[tuple[SupportedEncryptionTypes, Enctype], ...] = (
    (SupportedEncryptionTypes.AES256_CTS_HMAC_SHA1_96, Enctype.AES256_CTS_HMAC_SHA1_96),
    (SupportedEncryptionTypes.AES128_CTS_HMAC_SHA1_96, Enctype.AES128_CTS_HMAC_SHA1_96),
    (SupportedEncryptionTypes.RC4_HMAC_MD5, Enctype.RC4_HMAC),
    (SupportedEncryptionTypes.DES_CBC_MD5, Enctype.DES_CBC_MD5),
    (SupportedEncryptionTypes.DES_CBC_CRC, Enctype.DES_CBC_CRC),
)

_AES_ENCTYPES = frozenset({Enctype.AES128_CTS_HMAC_SHA1_96, Enctype.AES256_CTS_HMAC_SHA1_96})


@dataclass(frozen=True)
class DerivedKey:
    """One long-term key: its enctype and the key bytes (never shown in repr)."""

    enctype: Enctype
    key: bytes = field(repr=False)


def password_utf8(raw: bytes) -> bytes:
    """UTF-8 form of a raw UTF-16LE password, as Samba's ``UTF16_MUNGED`` charset makes it.

    Rule (Samba ``lib/util/charset/iconv.c`` ``utf16_munged_pull``, also used by gmsad and
    pyspnego): valid surrogate pairs are kept, every unpaired surrogate code unit becomes U+FFFD,
    and a 0x0000 code unit would become U+0001 (gMSA passwords never contain one: MS-GKDI
    post-processing already turned it into 0x0001). In Python:
    ``raw.decode("utf-16-le", "replace").encode("utf-8")``, plus the 0x0000 rule.
    This is the input to the AES string-to-key. Raises ``ValueError`` for an odd length.
    """
    if len(raw) % 2:
        raise ValueError("a UTF-16LE password must have an even number of bytes")
    text = raw.decode("utf-16-le", "replace").replace("\x00", "\x01")
    return text.encode("utf-8")


def nt_hash(raw: bytes) -> bytes:
    """NT hash (= RC4-HMAC key) of a raw UTF-16LE password: ``MD4(raw)``, no decoding."""
    return md4(raw)


def salt_for_computer_account(dns_domain: str, sam_account_name: str) -> str:
    """Kerberos salt of a computer or gMSA account ([MS-KILE] 3.1.1.2).

    ``UPPER(dns_domain) + "host" + lower(sAMAccountName without the trailing "$") + "." +
    lower(dns_domain)``; for example ``CONTOSO.COMhostwebapp01.contoso.com``.
    """
    domain = dns_domain.strip().rstrip(".")
    name = sam_account_name.strip()
    if name.endswith("$"):
        name = name[:-1]
    if not domain:
        raise InputError("the DNS domain name for the Kerberos salt is empty")
    if not name:
        raise InputError("the account name for the Kerberos salt is empty")
    return f"{domain.upper()}host{name.lower()}.{domain.lower()}"


def derive_keys(
    password_utf16: bytes,
    salt: str,
    enctypes: Iterable[int],
    *,
    context: krb5.Context | None = None,
) -> list[DerivedKey]:
    """Derive one long-term key per enctype, in the order given (duplicates dropped).

    AES128/AES256 use RFC 3962 string-to-key of :func:`password_utf8` with ``salt`` (UTF-8);
    RC4-HMAC is :func:`nt_hash` of the raw bytes (the salt does not apply). DES is refused.
    """
    if len(password_utf16) % 2:
        raise InputError("the managed password is not valid UTF-16LE (odd length)")
    wanted: list[Enctype] = []
    for number in enctypes:
        try:
            enctype = Enctype(number)
        except ValueError:
            raise InputError(f"unknown Kerberos enctype {number}") from None
        if enctype in (Enctype.DES_CBC_CRC, Enctype.DES_CBC_MD5):
            raise InputError(
                f"enctype {enctype.krb5_name} is not supported", hint="use AES256/AES128 (or RC4)"
            )
        if enctype not in wanted:
            wanted.append(enctype)

    keys: list[DerivedKey] = []
    if any(enctype in _AES_ENCTYPES for enctype in wanted) and context is None:
        context = _init_context()
    for enctype in wanted:
        if enctype is Enctype.RC4_HMAC:
            keys.append(DerivedKey(enctype, nt_hash(password_utf16)))
            continue
        assert context is not None
        try:
            block = krb5.c_string_to_key(
                context, int(enctype), password_utf8(password_utf16), salt.encode("utf-8")
            )
        except krb5.Krb5Error as exc:
            raise EnvironmentProblem(
                f"the Kerberos library could not derive a {enctype.krb5_name} key: {exc}",
                hint="check that MIT krb5 supports this enctype (permitted_enctypes in krb5.conf)",
            ) from exc
        keys.append(DerivedKey(enctype, bytes(block.data)))
    return keys


def _init_context() -> krb5.Context:
    try:
        return krb5.init_context()
    except krb5.Krb5Error as exc:
        raise EnvironmentProblem(
            f"cannot initialise the Kerberos library: {exc}",
            hint="check /etc/krb5.conf (or $KRB5_CONFIG) for syntax errors",
        ) from exc
