"""gMSA and sMSA lifecycle: New-, Get-, Set-, Remove-ADServiceAccount, Add-/Remove-ADComputerServiceAccount.

Objects as a Windows DC holds them (attributes per MS-ADA2/MS-ADSC; what New-ADServiceAccount writes):
- gMSA: objectClass msDS-GroupManagedServiceAccount, in ``CN=Managed Service Accounts`` (or
  ``--path``), sAMAccountName ``NAME$``, userAccountControl WORKSTATION_TRUST_ACCOUNT (0x1000,
  plus ACCOUNTDISABLE 0x2 when disabled), dNSHostName, msDS-ManagedPasswordInterval,
  msDS-SupportedEncryptionTypes, servicePrincipalName, and msDS-GroupMSAMembership: a
  self-relative security descriptor whose DACL grants each principal allowed to retrieve the
  password (PrincipalsAllowedToRetrieveManagedPassword). New-ADServiceAccount writes it as
  ``O:BAD:(A;;0xf01ff;;;SID)...`` (owner BUILTIN\\Administrators, no group, one ACCESS_ALLOWED ACE
  per principal with SEC_ADS_GENERIC_ALL 0xf01ff, ACL revision 4), which is also what Samba's
  ``service-account group-msa-membership add`` writes and reads back (samba.domain.models.gmsa).
- sMSA: objectClass msDS-ManagedServiceAccount; it is restricted to a computer by that
  computer's msDS-HostServiceAccount (a linked attribute; msDS-HostServiceAccountBL on the
  account is its backlink).

Everything is validated and resolved before the one write that creates or changes an object.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import ldap

from credo.accounts.principals import Principal, resolve_computer, resolve_principal, resolve_principals
from credo.accounts.validation import (
    DEFAULT_ENCTYPES,
    validate_dns_host_name,
    validate_interval,
    validate_spns,
)
from credo.ad.attributes import MANAGED_PASSWORD_GUID
from credo.ad.connection import Directory
from credo.ad.names import escape_dn_value, escape_filter_value, managed_account_sam
from credo.ad.read_audit import add_read_audit, read_sacl
from credo.ad.security import (
    ACCESS_ALLOWED_ACE_TYPE,
    Ace,
    MalformedSecurityDescriptor,
    SecurityDescriptor,
    to_sddl,
)
from credo.errors import CredoError, InputError
from credo.gmsa.account import (
    ACCOUNT_ATTRIBUTES,
    GMSA_CLASS,
    SMSA_CLASS,
    ManagedServiceAccount,
    account_summary,
    find_managed_account,
)

__all__ = [
    "AccountChanges",
    "NewAccount",
    "account_details",
    "create_account",
    "iter_accounts",
    "link_account",
    "membership_descriptor",
    "remove_account",
    "update_account",
]

UF_ACCOUNTDISABLE = 0x0002
UF_WORKSTATION_TRUST_ACCOUNT = 0x1000
# SEC_ADS_GENERIC_ALL: CCDCLCSWRPWPDTLOCRSDRCWDWO (MS-ADTS 5.1.3.2 rights, MS-DTYP 2.4.3 standard).
GENERIC_ALL_DS = 0x000F01FF
BUILTIN_ADMINISTRATORS = "S-1-5-32-544"
# Well-known GUID of the Managed Service Accounts container (MS-ADTS 6.1.1.4: GUID_MANAGED_SERVICE_ACCOUNTS_CONTAINER_W).
MSA_CONTAINER_GUID = "1EB93889E40C45DF9F0C64D23BBB6237"


def membership_descriptor(sids: list[str] | tuple[str, ...]) -> SecurityDescriptor:
    """msDS-GroupMSAMembership as Windows writes it: ``O:BAD:(A;;0xf01ff;;;SID)`` per principal."""
    aces = tuple(Ace(ACCESS_ALLOWED_ACE_TYPE, 0, GENERIC_ALL_DS, sid) for sid in sids)
    return SecurityDescriptor(owner=BUILTIN_ADMINISTRATORS, group=None, dacl=aces)


@dataclass(frozen=True)
class NewAccount:
    """What ``credo account new`` creates. Validated by ``create_account`` before any write."""

    name: str
    dns_host_name: str | None = None
    allowed: tuple[str, ...] = ()
    enctypes: int = DEFAULT_ENCTYPES
    spns: tuple[str, ...] = ()
    interval_days: int | None = None
    description: str | None = None
    path: str | None = None
    disabled: bool = False
    standalone: bool = False
    computer: str | None = None


@dataclass(frozen=True)
class AccountChanges:
    """What ``credo account set`` changes; None or empty means "leave as is"."""

    allowed: tuple[str, ...] | None = None
    add_allowed: tuple[str, ...] = ()
    remove_allowed: tuple[str, ...] = ()
    spns: tuple[str, ...] | None = None
    add_spns: tuple[str, ...] = ()
    remove_spns: tuple[str, ...] = ()
    enctypes: int | None = None
    dns_host_name: str | None = None
    description: str | None = None
    enabled: bool | None = None
    # Add a SACL audit ACE so that DCs log reads of the password (credo.ad.read_audit).
    audit_reads: bool = False


def _msa_container(directory: Directory) -> str:
    # <WKGUID=...,base> resolves the well-known container wherever it was renamed or moved.
    entry = directory.search_one(
        f"<WKGUID={MSA_CONTAINER_GUID},{directory.base_dn}>", ldap.SCOPE_BASE, "(objectClass=*)", ["cn"]
    )
    return entry[0] if entry else f"CN=Managed Service Accounts,{directory.base_dn}"


def _exists(directory: Directory, sam: str) -> str | None:
    entry = directory.search_one(
        directory.base_dn, ldap.SCOPE_SUBTREE, f"(sAMAccountName={escape_filter_value(sam)})", ["cn"]
    )
    return entry[0] if entry else None


def _spn_owners(directory: Directory, spns: list[str], *, except_dn: str | None = None) -> None:
    """Refuse an SPN that another object already has (duplicate SPNs break Kerberos, MS-KILE 3.3.5.1.1)."""
    for spn in spns:
        entry = directory.search_one(
            directory.base_dn,
            ldap.SCOPE_SUBTREE,
            f"(servicePrincipalName={escape_filter_value(spn)})",
            ["sAMAccountName"],
        )
        if entry is not None and (except_dn is None or entry[0].lower() != except_dn.lower()):
            raise InputError(
                f"service principal name {spn!r} already belongs to {entry[0]}",
                hint="an SPN may be registered on one account only",
            )


def _check_path(directory: Directory, path: str) -> str:
    try:
        ldap.dn.str2dn(path)
    except ldap.DECODING_ERROR:
        raise InputError(f"invalid --path {path!r}: not a distinguished name") from None
    entry = directory.search_one(path, ldap.SCOPE_BASE, "(objectClass=*)", ["objectClass"])
    if entry is None:
        raise InputError(f"--path {path!r} does not exist")
    return entry[0]


def create_account(directory: Directory, spec: NewAccount) -> ManagedServiceAccount:
    """New-ADServiceAccount. Every check runs before the add; an sMSA is linked in the same call."""
    sam = managed_account_sam(spec.name)
    bare = sam[:-1]
    computer: Principal | None = None
    if spec.standalone:
        if spec.allowed:
            raise InputError(
                "an sMSA has no --allowed principals", hint="use --computer to restrict it to one"
            )
        if spec.computer is None:
            raise InputError("an sMSA needs --computer", hint="give the computer it is restricted to")
        if spec.interval_days is not None:
            raise InputError("--interval-days applies to gMSAs only")
    elif spec.computer is not None:
        raise InputError("--computer goes with --standalone", hint="for a gMSA, use --allowed")
    dns_host_name = (
        validate_dns_host_name(spec.dns_host_name) if not spec.standalone or spec.dns_host_name else None
    )
    interval = None if spec.standalone else validate_interval(spec.interval_days)
    spns = validate_spns(spec.spns)
    if spec.description is not None and ("\n" in spec.description or len(spec.description) > 1024):
        raise InputError("--description must be one line of at most 1024 characters")
    if not spec.standalone and not spec.allowed:
        raise InputError(
            "a gMSA needs at least one --allowed principal",
            hint="name the computers or groups that may retrieve its password",
        )
    existing = _exists(directory, sam)
    if existing:
        raise InputError(
            f"{sam} already exists ({existing})", hint="choose another name, or `credo account set`"
        )
    principals = resolve_principals(directory, list(spec.allowed))
    if spec.standalone:
        assert spec.computer is not None
        computer = resolve_computer(directory, spec.computer)
    _spn_owners(directory, spns)
    parent = _check_path(directory, spec.path) if spec.path else _msa_container(directory)
    dn = f"CN={escape_dn_value(bare)},{parent}"
    uac = UF_WORKSTATION_TRUST_ACCOUNT | (UF_ACCOUNTDISABLE if spec.disabled else 0)
    attrs: dict[str, list[bytes]] = {
        "objectClass": [(SMSA_CLASS if spec.standalone else GMSA_CLASS).encode()],
        "cn": [bare.encode()],
        "sAMAccountName": [sam.encode()],
        "userAccountControl": [str(uac).encode()],
        "msDS-SupportedEncryptionTypes": [str(spec.enctypes).encode()],
    }
    if dns_host_name:
        attrs["dNSHostName"] = [dns_host_name.encode()]
    if interval is not None:
        attrs["msDS-ManagedPasswordInterval"] = [str(interval).encode()]
        attrs["msDS-GroupMSAMembership"] = [membership_descriptor([p.sid for p in principals]).pack()]
    if spns:
        attrs["servicePrincipalName"] = [s.encode() for s in spns]
    if spec.description:
        attrs["description"] = [spec.description.encode()]
    directory.add(dn, attrs)
    if computer is not None:
        try:
            directory.modify(computer.dn, [(ldap.MOD_ADD, "msDS-HostServiceAccount", [dn.encode()])])
        except CredoError:
            # Nothing half-made: an sMSA that cannot be restricted to its computer is removed.
            directory.delete(dn)
            raise
    account, _ = find_managed_account(directory, sam)
    return account


def _read(directory: Directory, name: str) -> tuple[ManagedServiceAccount, dict[str, list[bytes]]]:
    account, entry = find_managed_account(directory, name)
    return account, entry[1]


def account_details(
    directory: Directory, account: ManagedServiceAccount, raw: dict[str, list[bytes]]
) -> dict[str, Any]:
    """What ``credo account get`` prints: names for SIDs, and the membership also as SDDL."""
    membership = raw.get("msDS-GroupMSAMembership")
    sddl = None
    if membership:
        try:
            sddl = to_sddl(SecurityDescriptor.unpack(membership[0]))
        except MalformedSecurityDescriptor:
            sddl = None  # an ACE type credo does not render (set by another tool): names still shown
    return account_summary(directory, account) | {
        "group_msa_membership_sddl": sddl,
        "description": account.description,
        "linked_computers": list(account.linked_computers),
    }


def get_account(directory: Directory, name: str) -> dict[str, Any]:
    account, raw = _read(directory, name)
    return account_details(directory, account, raw)


_FILTER = re.compile(r"^\(.*\)$", re.DOTALL)


def iter_accounts(directory: Directory, ldap_filter: str | None = None) -> Iterator[ManagedServiceAccount]:
    """Every gMSA and sMSA under the domain, optionally narrowed by an RFC 4515 filter."""
    if ldap_filter is not None and (
        not _FILTER.match(ldap_filter) or ldap_filter.count("(") != ldap_filter.count(")")
    ):
        raise InputError(
            f"invalid --filter {ldap_filter!r}",
            hint="give an LDAP filter in parentheses, e.g. '(dNSHostName=*web*)'",
        )
    classes = f"(|(objectClass={GMSA_CLASS})(objectClass={SMSA_CLASS}))"
    filterstr = f"(&{classes}{ldap_filter})" if ldap_filter else classes
    for entry in directory.search_paged(directory.base_dn, ldap.SCOPE_SUBTREE, filterstr, ACCOUNT_ATTRIBUTES):
        yield ManagedServiceAccount.from_entry(entry)


def update_account(directory: Directory, name: str, changes: AccountChanges) -> ManagedServiceAccount:
    """Set-ADServiceAccount: one LDAP modify with every change, after every check."""
    account, raw = _read(directory, name)
    mods: list[tuple[int, str, list[bytes] | None]] = []
    if changes.allowed is not None and (changes.add_allowed or changes.remove_allowed):
        raise InputError("--allowed replaces the list: do not combine it with --add-allowed/--remove-allowed")
    if changes.spns is not None and (changes.add_spns or changes.remove_spns):
        raise InputError("--spn replaces the list: do not combine it with --add-spn/--remove-spn")
    touches_membership = changes.allowed is not None or changes.add_allowed or changes.remove_allowed
    if touches_membership:
        if not account.group_managed:
            raise InputError(f"{account.sam_account_name} is an sMSA: it has no allowed principals")
        if changes.allowed is not None:
            sids = [p.sid for p in resolve_principals(directory, list(changes.allowed))]
        else:
            sids = list(account.allowed_sids)
            for principal in resolve_principals(directory, list(changes.add_allowed)):
                if principal.sid in sids:
                    raise InputError(f"{principal.sam_account_name or principal.dn} is already allowed")
                sids.append(principal.sid)
            for text in changes.remove_allowed:
                principal = resolve_principal(directory, text)
                if principal.sid not in sids:
                    raise InputError(
                        f"{principal.sam_account_name or principal.dn} is not among the allowed principals"
                    )
                sids.remove(principal.sid)
        if not sids:
            raise InputError(
                "a gMSA needs at least one allowed principal", hint="keep one, or remove the account"
            )
        mods.append((ldap.MOD_REPLACE, "msDS-GroupMSAMembership", [membership_descriptor(sids).pack()]))
    if changes.spns is not None or changes.add_spns or changes.remove_spns:
        current = list(account.spns)
        if changes.spns is not None:
            wanted = validate_spns(changes.spns)
        else:
            wanted = list(current)
            for spn in validate_spns(changes.add_spns):
                if spn.lower() in (s.lower() for s in wanted):
                    raise InputError(f"{account.sam_account_name} already has SPN {spn!r}")
                wanted.append(spn)
            for spn in validate_spns(changes.remove_spns):
                match = [s for s in wanted if s.lower() == spn.lower()]
                if not match:
                    raise InputError(f"{account.sam_account_name} has no SPN {spn!r}")
                wanted.remove(match[0])
        _spn_owners(directory, wanted, except_dn=account.dn)
        mods.append((ldap.MOD_REPLACE, "servicePrincipalName", [s.encode() for s in wanted] or None))
    if changes.enctypes is not None:
        mods.append((ldap.MOD_REPLACE, "msDS-SupportedEncryptionTypes", [str(changes.enctypes).encode()]))
    if changes.dns_host_name is not None:
        mods.append(
            (ldap.MOD_REPLACE, "dNSHostName", [validate_dns_host_name(changes.dns_host_name).encode()])
        )
    if changes.description is not None:
        if "\n" in changes.description or len(changes.description) > 1024:
            raise InputError("--description must be one line of at most 1024 characters")
        mods.append(
            (ldap.MOD_REPLACE, "description", [changes.description.encode()] if changes.description else None)
        )
    if changes.enabled is not None:
        uac = (
            int(raw["userAccountControl"][0])
            if raw.get("userAccountControl")
            else UF_WORKSTATION_TRUST_ACCOUNT
        )
        uac = uac & ~UF_ACCOUNTDISABLE if changes.enabled else uac | UF_ACCOUNTDISABLE
        mods.append((ldap.MOD_REPLACE, "userAccountControl", [str(uac).encode()]))
    if changes.audit_reads and not account.group_managed:
        raise InputError(f"{account.sam_account_name} is an sMSA: DCs never hand out its password")
    if not mods and not changes.audit_reads:
        raise InputError("nothing to change", hint="see `credo account set --help`")
    if changes.audit_reads and mods:
        # Refused without SeSecurityPrivilege: find out before the other changes are written.
        read_sacl(directory, account.dn)
    if mods:
        directory.modify(account.dn, mods)
    if changes.audit_reads:
        # Its own write: the SACL goes with a different SD_FLAGS control, and needs
        # SeSecurityPrivilege, which the other changes do not.
        add_read_audit(directory, account.dn, MANAGED_PASSWORD_GUID)
    updated, _ = find_managed_account(directory, account.sam_account_name)
    return updated


def remove_account(directory: Directory, name: str) -> ManagedServiceAccount:
    """Remove-ADServiceAccount (the object and whatever it contains)."""
    account, _ = _read(directory, name)
    directory.delete(account.dn, tree=True)
    return account


def link_account(
    directory: Directory, name: str, computer: str, *, link: bool = True
) -> tuple[ManagedServiceAccount, Principal]:
    """Add-/Remove-ADComputerServiceAccount: msDS-HostServiceAccount on the computer."""
    account, _ = _read(directory, name)
    host = resolve_computer(directory, computer)
    linked = any(dn.lower() == host.dn.lower() for dn in account.linked_computers)
    if link and linked:
        raise InputError(f"{account.sam_account_name} is already linked to {host.sam_account_name}")
    if not link and not linked:
        raise InputError(f"{account.sam_account_name} is not linked to {host.sam_account_name}")
    op = ldap.MOD_ADD if link else ldap.MOD_DELETE
    directory.modify(host.dn, [(op, "msDS-HostServiceAccount", [account.dn.encode()])])
    updated, _ = find_managed_account(directory, account.sam_account_name)
    return updated, host
