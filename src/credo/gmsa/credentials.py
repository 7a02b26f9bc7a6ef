"""From a retrieved managed password to Kerberos keys, keytab entries and a TGT for ``NAME$``.

Salt: the KDC's ETYPE-INFO2 for the account (RFC 4120 5.2.7.5), asked through MIT krb5; if the KDC
does not say, the computer-account rule of MS-KILE 3.1.1.2, which gMSAs follow (they are
workstation trust accounts). Keys: AES from the password's UTF-8 form (RFC 3962), RC4 from the raw
UTF-16LE bytes (the NT hash), only when asked for and allowed by the account.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import krb5

from credo.errors import InputError
from credo.gmsa.retrieval import ManagedPassword
from credo.krb.keys import SupportedEncryptionTypes, derive_keys, salt_for_computer_account
from credo.krb.keytab import KeytabEntry
from credo.krb.tgt import MemoryKeytab, Ticket, acquire_tgt

__all__ = [
    "AES_ENCTYPES",
    "ENCTYPE_NAMES",
    "GmsaKeyMaterial",
    "acquire_gmsa_tgt",
    "gmsa_keytab",
    "kdc_salt",
    "key_material",
    "parse_enctypes",
]

log = logging.getLogger(__name__)

AES256 = 18
AES128 = 17
RC4 = 23
AES_ENCTYPES = (AES256, AES128)
ENCTYPE_NAMES = {
    "aes256": AES256,
    "aes256-cts-hmac-sha1-96": AES256,
    "aes128": AES128,
    "aes128-cts-hmac-sha1-96": AES128,
    "rc4": RC4,
    "rc4-hmac": RC4,
    "arcfour-hmac": RC4,
}
_FLAG_OF = {
    AES256: SupportedEncryptionTypes.AES256_CTS_HMAC_SHA1_96,
    AES128: SupportedEncryptionTypes.AES128_CTS_HMAC_SHA1_96,
    RC4: SupportedEncryptionTypes.RC4_HMAC_MD5,
}


def parse_enctypes(value: str | None) -> tuple[int, ...]:
    """``"aes256,aes128"`` -> enctype numbers; None -> AES256 and AES128."""
    if not value:
        return AES_ENCTYPES
    result: list[int] = []
    for part in (p.strip().lower() for p in value.split(",")):
        if not part:
            continue
        if part not in ENCTYPE_NAMES:
            raise InputError(f"unknown encryption type {part!r}", hint="use aes256, aes128 or rc4")
        if ENCTYPE_NAMES[part] not in result:
            result.append(ENCTYPE_NAMES[part])
    if not result:
        raise InputError("no encryption type given", hint="use aes256, aes128 or rc4")
    return tuple(result)


def allowed_enctypes(requested: Iterable[int], supported: int | None) -> tuple[int, ...]:
    """The requested enctypes the account allows (msDS-SupportedEncryptionTypes, MS-KILE 2.2.7).

    An account without the attribute allows RC4 only by default on Windows; credo treats a missing
    value as "AES allowed, RC4 not" so that a keytab is useful against a modern KDC.
    """
    flags = (
        SupportedEncryptionTypes(supported)
        if supported
        else (
            SupportedEncryptionTypes.AES128_CTS_HMAC_SHA1_96
            | SupportedEncryptionTypes.AES256_CTS_HMAC_SHA1_96
        )
    )
    return tuple(e for e in requested if _FLAG_OF[e] & flags)


def kdc_salt(principal: str) -> str | None:
    """The AES salt the KDC announces for ``principal`` in ETYPE-INFO2, or None."""
    ctx = krb5.init_context()
    try:
        info = krb5.get_etype_info(ctx, krb5.parse_name_flags(ctx, principal.encode()))
    except krb5.Krb5Error as exc:
        log.debug("no ETYPE-INFO2 for %s: %s", principal, exc)
        return None
    salt = info.salt
    return salt.decode() if salt else None


@dataclass(frozen=True)
class GmsaKeyMaterial:
    """Keytab entries for a gMSA; keys never appear in the repr."""

    principal: str
    salt: str
    entries: tuple[KeytabEntry, ...] = field(repr=False)

    @property
    def kvnos(self) -> list[int]:
        return sorted({e.kvno for e in self.entries}, reverse=True)

    def select(self, enctypes: Iterable[int], spns: Iterable[str], realm: str) -> GmsaKeyMaterial:
        """The account's own entries of ``enctypes`` (in that order within each kvno), each also
        under every SPN, as ``key_material`` writes them. A kept key set (the credential agent's)
        makes any keytab of the account from this without the password."""
        order = {enctype: i for i, enctype in enumerate(enctypes)}
        names = [self.principal, *(spn if "@" in spn else f"{spn}@{realm}" for spn in spns)]
        own = [e for e in self.entries if e.principal == self.principal and e.enctype in order]
        kvnos = list(dict.fromkeys(e.kvno for e in own))
        entries = [
            replace(entry, principal=name)
            for kvno in kvnos
            for entry in sorted((e for e in own if e.kvno == kvno), key=lambda e: order[e.enctype])
            # The SPN entries use the account's own salt: they are keys of the same account.
            for name in names
        ]
        return GmsaKeyMaterial(principal=self.principal, salt=self.salt, entries=tuple(entries))


def key_material(
    password: ManagedPassword,
    realm: str,
    dns_domain: str,
    *,
    enctypes: Iterable[int] = AES_ENCTYPES,
    spns: Iterable[str] = (),
    salt: str | None = None,
) -> GmsaKeyMaterial:
    """Keytab entries for ``NAME$@REALM`` and each SPN, for every password version the blob has."""
    sam = password.account.sam_account_name
    principal = f"{sam}@{realm}"
    usable = allowed_enctypes(enctypes, password.account.supported_enctypes)
    if not usable:
        raise InputError(
            f"{sam} allows none of the requested encryption types",
            hint="check msDS-SupportedEncryptionTypes of the account and --enctypes",
        )
    salt = salt or kdc_salt(principal) or salt_for_computer_account(dns_domain, sam)
    entries = [
        KeytabEntry(principal, kvno, key.enctype, key.key)
        for kvno, raw in password.password_versions()
        for key in derive_keys(raw, salt, usable)
    ]
    return GmsaKeyMaterial(principal=principal, salt=salt, entries=tuple(entries)).select(usable, spns, realm)


def gmsa_keytab(
    password: ManagedPassword, realm: str, dns_domain: str, *, salt: str | None = None
) -> MemoryKeytab:
    """The keys the KDC accepts now for ``NAME$@REALM``, in a process-private in-memory keytab.

    Keys, not the password: what a caller keeps to ask for TGTs until ``refresh_after``.
    """
    sam = password.account.sam_account_name
    principal = f"{sam}@{realm}"
    usable = allowed_enctypes(AES_ENCTYPES, password.account.supported_enctypes) or AES_ENCTYPES
    salt = salt or kdc_salt(principal) or salt_for_computer_account(dns_domain, sam)
    keys = derive_keys(password.authentication_password(), salt, usable)
    return MemoryKeytab.create(principal, password.kvno, ((key.enctype, key.key) for key in keys))


def acquire_gmsa_tgt(password: ManagedPassword, realm: str, dns_domain: str, ccache: str) -> Ticket:
    """A TGT for ``NAME$@REALM`` into ``ccache``, from the password the KDC accepts now."""
    principal = f"{password.account.sam_account_name}@{realm}"
    keytab = gmsa_keytab(password, realm, dns_domain)
    try:
        return acquire_tgt(keytab.name, principal, ccache)
    finally:
        keytab.close()
