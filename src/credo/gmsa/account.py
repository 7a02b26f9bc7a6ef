"""Managed service accounts as read from the directory, and the names of who may use them.

Attributes (MS-ADA2/MS-ADTS): msDS-GroupMSAMembership is the security descriptor whose DACL names
the principals allowed to retrieve the password (PrincipalsAllowedToRetrieveManagedPassword);
msDS-ManagedPasswordId is the key identifier of the current password (MS-GKDI 2.2.4);
msDS-KeyVersionNumber is the kvno of the current keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import ldap

from credo.ad.connection import Directory, Entry
from credo.ad.names import escape_filter_value, managed_account_sam
from credo.ad.security import SecurityDescriptor, sid_from_bytes
from credo.ad.sids import WELL_KNOWN as WELL_KNOWN  # re-exported: SID tables live in credo.ad.sids
from credo.ad.sids import token_group_sids as token_group_sids
from credo.errors import InputError, NotFoundError
from credo.krb.keys import enctype_names

__all__ = [
    "ACCOUNT_ATTRIBUTES",
    "ManagedServiceAccount",
    "account_summary",
    "find_managed_account",
    "resolve_sid_names",
    "token_group_sids",
]

UF_ACCOUNTDISABLE = 0x0002
GMSA_CLASS = "msDS-GroupManagedServiceAccount"
SMSA_CLASS = "msDS-ManagedServiceAccount"

ACCOUNT_ATTRIBUTES = (
    "objectClass",
    "objectSid",
    "sAMAccountName",
    "userAccountControl",
    "dNSHostName",
    "servicePrincipalName",
    "msDS-GroupMSAMembership",
    "msDS-SupportedEncryptionTypes",
    "msDS-ManagedPasswordInterval",
    "msDS-ManagedPasswordId",
    "msDS-ManagedPasswordPreviousId",
    "msDS-KeyVersionNumber",
    "whenCreated",
    "pwdLastSet",
    "description",
    "msDS-HostServiceAccountBL",
)


def _first(entry: Entry, name: str) -> bytes | None:
    values = entry[1].get(name)
    return values[0] if values else None


def _text(entry: Entry, name: str) -> str | None:
    value = _first(entry, name)
    return value.decode() if value is not None else None


def _int(entry: Entry, name: str) -> int | None:
    value = _first(entry, name)
    return int(value) if value is not None else None


def _generalized_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.strptime(value[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)


def _filetime(value: int | None) -> datetime | None:
    if not value:
        return None
    return datetime(1601, 1, 1, tzinfo=UTC) + timedelta(microseconds=value // 10)


@dataclass(frozen=True)
class ManagedServiceAccount:
    """A gMSA or sMSA as the directory describes it (no secret: the password is read apart)."""

    dn: str
    sam_account_name: str
    sid: str
    group_managed: bool
    enabled: bool
    dns_host_name: str | None
    spns: tuple[str, ...]
    allowed_sids: tuple[str, ...]
    supported_enctypes: int | None
    interval_days: int | None
    kvno: int | None
    password_id: bytes | None
    previous_password_id: bytes | None
    when_created: datetime | None
    password_last_set: datetime | None
    description: str | None
    linked_computers: tuple[str, ...]

    @classmethod
    def from_entry(cls, entry: Entry) -> ManagedServiceAccount:
        classes = {value.decode() for value in entry[1].get("objectClass", [])}
        sid_raw = _first(entry, "objectSid")
        membership = _first(entry, "msDS-GroupMSAMembership")
        allowed: tuple[str, ...] = ()
        if membership:
            allowed = tuple(SecurityDescriptor.unpack(membership).allowed_sids)
        uac = _int(entry, "userAccountControl") or 0
        return cls(
            dn=entry[0],
            sam_account_name=_text(entry, "sAMAccountName") or "",
            sid=sid_from_bytes(sid_raw)[0] if sid_raw else "",
            group_managed=GMSA_CLASS in classes,
            enabled=not uac & UF_ACCOUNTDISABLE,
            dns_host_name=_text(entry, "dNSHostName"),
            spns=tuple(v.decode() for v in entry[1].get("servicePrincipalName", [])),
            allowed_sids=allowed,
            supported_enctypes=_int(entry, "msDS-SupportedEncryptionTypes"),
            interval_days=_int(entry, "msDS-ManagedPasswordInterval"),
            kvno=_int(entry, "msDS-KeyVersionNumber"),
            password_id=_first(entry, "msDS-ManagedPasswordId"),
            previous_password_id=_first(entry, "msDS-ManagedPasswordPreviousId"),
            when_created=_generalized_time(_text(entry, "whenCreated")),
            password_last_set=_filetime(_int(entry, "pwdLastSet")),
            description=_text(entry, "description"),
            linked_computers=tuple(v.decode() for v in entry[1].get("msDS-HostServiceAccountBL", [])),
        )


def find_managed_account(
    directory: Directory, name: str, extra_attributes: tuple[str, ...] = ()
) -> tuple[ManagedServiceAccount, Entry]:
    """The managed service account ``name`` (with or without ``$``), or NotFoundError.

    ``extra_attributes`` are requested first in the same search (msDS-ManagedPassword, say).
    """
    sam = managed_account_sam(name)
    value = escape_filter_value(sam)
    filterstr = f"(&(|(objectClass={GMSA_CLASS})(objectClass={SMSA_CLASS}))(sAMAccountName={value}))"
    entry = directory.search_one(
        directory.base_dn, ldap.SCOPE_SUBTREE, filterstr, [*extra_attributes, *ACCOUNT_ATTRIBUTES]
    )
    if entry is None:
        other = directory.search_one(
            directory.base_dn, ldap.SCOPE_SUBTREE, f"(sAMAccountName={value})", ["objectClass"]
        )
        if other is not None:
            raise InputError(f"{sam} exists ({other[0]}) but is not a managed service account")
        raise NotFoundError(f"managed service account {sam} does not exist in {directory.base_dn}")
    return ManagedServiceAccount.from_entry(entry), entry


def resolve_sid_names(directory: Directory, sids: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``{sid: "NETBIOS\\name"}``; a SID the directory does not know keeps its S-1-... form."""
    netbios = directory.netbios_name
    names: dict[str, str] = {}
    for sid in sids:
        if sid in WELL_KNOWN:
            names[sid] = WELL_KNOWN[sid]
            continue
        # AD and Samba accept the string form of a SID in an objectSid assertion (MS-ADTS 3.1.1.3.1.2.4).
        entry = directory.search_one(
            directory.base_dn,
            ldap.SCOPE_SUBTREE,
            f"(objectSid={escape_filter_value(sid)})",
            ["sAMAccountName"],
        )
        sam = _text(entry, "sAMAccountName") if entry else None
        names[sid] = f"{netbios}\\{sam}" if sam else sid
    return names


def account_summary(directory: Directory, account: ManagedServiceAccount) -> dict[str, Any]:
    """The fields ``gmsa show`` and ``account get`` share, readers named (never a secret)."""
    names = resolve_sid_names(directory, list(account.allowed_sids))
    return {
        "dn": account.dn,
        "sam_account_name": account.sam_account_name,
        "sid": account.sid,
        "type": "gMSA" if account.group_managed else "sMSA",
        "enabled": account.enabled,
        "dns_host_name": account.dns_host_name,
        "service_principal_names": list(account.spns),
        "principals_allowed_to_retrieve_password": [
            {"sid": sid, "name": names.get(sid, sid)} for sid in account.allowed_sids
        ],
        "supported_encryption_types": enctype_names(account.supported_enctypes),
        "password_interval_days": account.interval_days,
        "when_created": account.when_created.isoformat() if account.when_created else None,
    }
