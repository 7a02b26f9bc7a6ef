"""KDS root keys (msKds-ProvRootKey): list them, and create one as Add-KdsRootKey does.

A root key lives in ``CN=Master Root Keys,CN=Group Key Distribution Service,CN=Services,`` under
the configuration partition (MS-GKDI 3.1.1.1; MS-ADTS 3.1.1.11 for the schema). Its attributes
are those a Windows DC writes (MS-GKDI 2.2.1 and 2.2.2 for the two parameter blobs; compared byte
for byte with the key a Samba 4.22 DC creates at provisioning):

- ``msKds-Version`` 1; ``msKds-KDFAlgorithmID`` ``SP800_108_CTR_HMAC`` with ``msKds-KDFParam``
  naming SHA512 (MS-GKDI 2.2.2 KDF Parameters);
- ``msKds-SecretAgreementAlgorithmID`` ``DH`` with ``msKds-SecretAgreementParam`` the "DHPM"
  FFC DH Parameters blob (MS-GKDI 2.2.1) of the RFC 5114 section 2.3 group (2048-bit MODP, 256-bit
  prime order subgroup); ``msKds-PublicKeyLength`` 2048 and ``msKds-PrivateKeyLength`` 256 (the
  subgroup order's size in bits, which the Samba DC writes; Windows writes 512; neither value
  enters the gMSA password derivation);
- ``msKds-RootKeyData``: 64 random bytes (the L0 seed of MS-GKDI 3.1.4.1.1), readable only by
  Domain/Enterprise Admins and SYSTEM. credo generates it with ``os.urandom`` and never returns,
  logs or prints it: ``RootKey`` has no field for it;
- ``msKds-DomainID``: the DN of the DC's computer object; ``msKds-CreateTime`` and
  ``msKds-UseStartTime``: FILETIMEs (100 ns since 1601, as decimal strings).

A DC uses a root key for new passwords only from ``msKds-UseStartTime`` plus one key cycle
(10 hours, MS-GKDI 3.1.4.1.1) so that it has replicated to every DC; Samba also allows the 5-minute
clock skew. ``--effective-immediately`` therefore dates the start back by 10 h 5 min, as Samba's
provisioning does for its own first key (python/samba/provision: use_start_time = now -
KEY_CYCLE_DURATION - MAX_CLOCK_SKEW), and Add-KdsRootKey users do with ``-EffectiveTime
((Get-Date).AddHours(-10))``.
"""

from __future__ import annotations

import os
import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import ldap

from credo.ad.attributes import KDS_ROOT_KEY_DATA_GUID
from credo.ad.connection import Directory, Entry
from credo.ad.read_audit import add_read_audit
from credo.errors import CredoError, InputError, NotFoundError

__all__ = [
    "DH_PARAMETERS",
    "KDF_PARAMETERS_SHA512",
    "KEY_CYCLE",
    "RootKey",
    "audit_root_key_reads",
    "create_root_key",
    "datetime_to_filetime",
    "filetime_to_datetime",
    "list_root_keys",
    "root_keys_dn",
]

KEY_CYCLE = timedelta(hours=10)
MAX_CLOCK_SKEW = timedelta(minutes=5)
ROOT_KEY_DATA_LENGTH = 64
FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)

# MS-GKDI 2.2.2 KDF Parameters: Reserved u32 0, u32 1, cbHashName u32, Reserved u32 0, then the
# hash algorithm name in UTF-16LE with its terminating NUL.
_HASH_NAME = "SHA512\0".encode("utf-16-le")
KDF_PARAMETERS_SHA512 = struct.pack("<IIII", 0, 1, len(_HASH_NAME), 0) + _HASH_NAME

# RFC 5114 section 2.3: 2048-bit MODP group with 256-bit prime order subgroup (p, then g).
_RFC5114_P = bytes.fromhex(
    "87A8E61DB4B6663CFFBBD19C651959998CEEF608660DD0F25D2CEED4435E3B00"
    "E00DF8F1D61957D4FAF7DF4561B2AA3016C3D91134096FAA3BF4296D830E9A7C"
    "209E0C6497517ABD5A8A9D306BCF67ED91F9E6725B4758C022E0B1EF4275BF7B"
    "6C5BFC11D45F9088B941F54EB1E59BB8BC39A0BF12307F5C4FDB70C581B23F76"
    "B63ACAE1CAA6B7902D52526735488A0EF13C6D9A51BFA4AB3AD8347796524D8E"
    "F6A167B5A41825D967E144E5140564251CCACB83E6B486F6B3CA3F7971506026"
    "C0B857F689962856DED4010ABD0BE621C3A3960A54E710C375F26375D7014103"
    "A4B54330C198AF126116D2276E11715F693877FAD7EF09CADB094AE91E1A1597"
)
_RFC5114_G = bytes.fromhex(
    "3FB32C9B73134D0B2E77506660EDBD484CA7B18F21EF205407F4793A1A0BA125"
    "10DBC15077BE463FFF4FED4AAC0BB555BE3A6C1B0C6B47B1BC3773BF7E8C6F62"
    "901228F8C28CBB18A55AE31341000A650196F931C77A57F2DDF463E5E9EC144B"
    "777DE62AAAB8A8628AC376D282D6ED3864E67982428EBC831D14348F6F2F9193"
    "B5045AF2767164E1DFC967C1FB3F2E55A4BD1BFFE83B9C80D052B985D182EA0A"
    "DB2A3B7313D3FE14C8484B1E052588B9B7D2BBD2DF016199ECD06E1557CD0915"
    "B3353BBB64E0EC377FD028370DF92B52C7891428CDC67EB6184B523D1DB246C3"
    "2F63078490F00EF8D647D148D47954515E2327CFEF98C582664B4C0F6CC41659"
)
# MS-GKDI 2.2.1 FFC DH Parameters: cbBlob u32, "DHPM" (0x4D504844), cbKeyLength u32, p, g.
DH_PARAMETERS = (
    struct.pack("<I4sI", 12 + len(_RFC5114_P) + len(_RFC5114_G), b"DHPM", len(_RFC5114_P))
    + _RFC5114_P
    + _RFC5114_G
)

# What is read back: never msKds-RootKeyData.
_ATTRIBUTES = (
    "cn",
    "msKds-Version",
    "msKds-KDFAlgorithmID",
    "msKds-SecretAgreementAlgorithmID",
    "msKds-PublicKeyLength",
    "msKds-PrivateKeyLength",
    "msKds-DomainID",
    "msKds-CreateTime",
    "msKds-UseStartTime",
)


def datetime_to_filetime(moment: datetime) -> int:
    """A timezone-aware datetime -> FILETIME (100 ns intervals since 1601-01-01 UTC, MS-DTYP 2.3.3)."""
    delta = moment.astimezone(UTC) - FILETIME_EPOCH
    return (delta.days * 86400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def filetime_to_datetime(value: int) -> datetime:
    return FILETIME_EPOCH + timedelta(microseconds=value // 10)


def root_keys_dn(directory: Directory) -> str:
    return f"CN=Master Root Keys,CN=Group Key Distribution Service,CN=Services,{directory.configuration_dn}"


@dataclass(frozen=True)
class RootKey:
    """A KDS root key as listed: identity and times. It has no field for the key data."""

    guid: str
    dn: str
    version: int | None
    kdf_algorithm: str | None
    secret_agreement_algorithm: str | None
    domain_controller: str | None
    created: datetime | None
    use_start: datetime | None

    @property
    def usable_from(self) -> datetime | None:
        """When DCs start deriving passwords from it: one key cycle after its start (MS-GKDI)."""
        return self.use_start + KEY_CYCLE if self.use_start else None

    def usable_at(self, moment: datetime) -> bool:
        return self.usable_from is not None and self.usable_from <= moment

    def as_dict(self, now: datetime | None = None) -> dict[str, object]:
        now = now or datetime.now(UTC)
        return {
            "guid": self.guid,
            "dn": self.dn,
            "version": self.version,
            "kdf_algorithm": self.kdf_algorithm,
            "secret_agreement_algorithm": self.secret_agreement_algorithm,
            "domain_controller": self.domain_controller,
            "created": self.created.isoformat() if self.created else None,
            "effective": self.use_start.isoformat() if self.use_start else None,
            "usable_from": self.usable_from.isoformat() if self.usable_from else None,
            "usable_now": self.usable_at(now),
        }

    @classmethod
    def from_entry(cls, entry: Entry) -> RootKey:
        def text(name: str) -> str | None:
            values = entry[1].get(name)
            return values[0].decode() if values else None

        def number(name: str) -> int | None:
            value = text(name)
            return int(value) if value is not None else None

        created, start = number("msKds-CreateTime"), number("msKds-UseStartTime")
        return cls(
            guid=text("cn") or entry[0].split(",")[0].split("=", 1)[1],
            dn=entry[0],
            version=number("msKds-Version"),
            kdf_algorithm=text("msKds-KDFAlgorithmID"),
            secret_agreement_algorithm=text("msKds-SecretAgreementAlgorithmID"),
            domain_controller=text("msKds-DomainID"),
            created=filetime_to_datetime(created) if created is not None else None,
            use_start=filetime_to_datetime(start) if start is not None else None,
        )


def list_root_keys(directory: Directory) -> list[RootKey]:
    """Every root key, oldest start first (the DC uses the newest usable one)."""
    entries = directory.search(
        root_keys_dn(directory), ldap.SCOPE_ONELEVEL, "(objectClass=msKds-ProvRootKey)", _ATTRIBUTES
    )
    keys = [RootKey.from_entry(entry) for entry in entries]
    epoch = FILETIME_EPOCH
    return sorted(keys, key=lambda k: (k.use_start or epoch, k.created or epoch, k.guid))


def audit_root_key_reads(directory: Directory) -> list[tuple[RootKey, bool]]:
    """Make DCs log every read of each root key's msKds-RootKeyData (a "Golden gMSA" read):
    a SACL audit ACE on each key (credo.ad.read_audit). Returns each key and whether an ACE was
    added (False: its reads were audited already)."""
    keys = list_root_keys(directory)
    if not keys:
        raise NotFoundError("no KDS root key to audit", hint="credo kds add --effective-immediately")
    return [(key, add_read_audit(directory, key.dn, KDS_ROOT_KEY_DATA_GUID)) for key in keys]


def _dc_computer_dn(directory: Directory) -> str:
    """The DN of the DC's computer object: the serverReference of the root DSE's serverName."""
    server = directory.root_dse.get("serverName")
    if server:
        entry = directory.search_one(
            server[0].decode(), ldap.SCOPE_BASE, "(objectClass=*)", ["serverReference"]
        )
        if entry and entry[1].get("serverReference"):
            return entry[1]["serverReference"][0].decode()
    raise CredoError("cannot tell which domain controller this is (no serverReference in the root DSE)")


def create_root_key(
    directory: Directory,
    *,
    effective_immediately: bool = False,
    effective_time: datetime | None = None,
    now: datetime | None = None,
) -> RootKey:
    """Add-KdsRootKey: a new root key, usable 10 hours after its effective time (default: now)."""
    if effective_immediately and effective_time is not None:
        raise InputError("give --effective-immediately or --effective-time, not both")
    if effective_time is not None and effective_time.tzinfo is None:
        raise InputError(
            "--effective-time needs a time zone", hint="write it as 2026-01-01T00:00:00Z or with +HH:MM"
        )
    created = (now or datetime.now(UTC)).astimezone(UTC)
    if effective_immediately:
        start = created - KEY_CYCLE - MAX_CLOCK_SKEW
    else:
        start = effective_time.astimezone(UTC) if effective_time is not None else created
    guid = str(uuid.uuid4())
    dn = f"CN={guid},{root_keys_dn(directory)}"
    attrs: dict[str, list[bytes]] = {
        "objectClass": [b"msKds-ProvRootKey"],
        "cn": [guid.encode()],
        "msKds-Version": [b"1"],
        "msKds-KDFAlgorithmID": [b"SP800_108_CTR_HMAC"],
        "msKds-KDFParam": [KDF_PARAMETERS_SHA512],
        "msKds-SecretAgreementAlgorithmID": [b"DH"],
        "msKds-SecretAgreementParam": [DH_PARAMETERS],
        "msKds-PublicKeyLength": [b"2048"],
        "msKds-PrivateKeyLength": [b"256"],
        "msKds-DomainID": [_dc_computer_dn(directory).encode()],
        "msKds-CreateTime": [str(datetime_to_filetime(created)).encode()],
        "msKds-UseStartTime": [str(datetime_to_filetime(start)).encode()],
        "msKds-RootKeyData": [os.urandom(ROOT_KEY_DATA_LENGTH)],
    }
    directory.add(dn, attrs)
    entry = directory.search_one(dn, ldap.SCOPE_BASE, "(objectClass=msKds-ProvRootKey)", _ATTRIBUTES)
    if entry is None:
        raise CredoError(f"created root key {guid} but cannot read it back")
    return RootKey.from_entry(entry)
