"""Resource-based constrained delegation (RBCD) to and from managed service accounts.

msDS-AllowedToActOnBehalfOfOtherIdentity (MS-ADA2 2.218) holds a security descriptor: a service
whose token passes an access check against its DACL may obtain, by S4U2proxy, a ticket to the
account's services as any user (MS-SFU 3.2.5.2.2, resource-based constrained delegation), and
S4U2self gives it the evidence ticket without the user. Only users in Protected Users or marked
"sensitive and cannot be delegated" are spared. Two cases concern managed service accounts:

- the attribute set on a managed service account: the principals it allows can act as any user,
  domain admins included, to the account's services (high);
- a managed service account allowed by a domain controller or a privileged computer (a member,
  direct or nested, of a privileged group, or adminCount=1), by its own SID or through a group:
  whoever can retrieve its password can act as any user to that host (critical).

A gMSA allowed by an ordinary computer is what RBCD is made for (a front end reaching a back end as
its users) and is not reported: the risk there is who may retrieve the gMSA's password, which
password-broad-readers and password-user-readers look at.

The descriptor is readable by Authenticated Users on computers and managed service accounts by
default (it belongs to the User-Account-Restrictions property set, and the classes' default DACL
lets them read all properties). A caller who may not read it sees the attribute as absent, so
the check works out from the DACLs of the domain controllers and of the accounts (already in the
snapshot) whether the caller could read it, and says incomplete where not.
"""

from __future__ import annotations

from dataclasses import replace

from credo.ad.security import ADS_RIGHT_DS_READ_PROP, SecurityDescriptor, access_entries
from credo.audit.acl import rights_by_sid
from credo.audit.checks.base import AuditOptions, Check, account_object, outcome, short_name
from credo.audit.findings import AffectedObject, CheckInfo, CheckOutcome, Finding, Severity
from credo.audit.snapshot import AccountRecord, DelegationTarget, Snapshot, privileged_group_sids

__all__ = ["CHECKS", "delegating_sids", "host_sensitivity"]

ATTRIBUTE = "msDS-AllowedToActOnBehalfOfOtherIdentity"
# schemaIDGUID of the attribute and of its property set User-Account-Restrictions
# (its attributeSecurityGuid, MS-ADA2 2.218): an object ACE on either grants reading it.
ALLOWED_TO_ACT_GUID = "3f78c3e5-f79a-46bd-a0b8-9d18116ddc79"
USER_ACCOUNT_RESTRICTIONS_GUID = "4c164200-20c0-11d0-a768-00aa006e0529"

RBCD = CheckInfo(
    id="rbcd",
    severity=Severity.CRITICAL,
    title="Resource-based constrained delegation to or from a managed service account",
    why=(
        "msDS-AllowedToActOnBehalfOfOtherIdentity lets the principals it names obtain tickets as any "
        "user, domain admins included, to the account's services (S4U2self + S4U2proxy). Set on a "
        "managed service account, those principals can impersonate anyone to its services (high); a "
        "managed service account named on a domain controller or a privileged computer hands every "
        "host that can retrieve its password any identity on that host (critical)."
    ),
)


def delegating_sids(snapshot: Snapshot, descriptor: SecurityDescriptor) -> list[str]:
    """The SIDs granted access by the descriptor's DACL, in DACL order, deny ACEs subtracted as the
    KDC's access check does (MS-DTYP 2.5.3.2). The owner's implicit rights do not count: Windows
    and samba-tool write the Administrators group as owner, which is not a delegation."""
    granted = rights_by_sid(replace(descriptor, owner=None), token_of=snapshot.token_of)
    return list(granted)


def host_sensitivity(snapshot: Snapshot, target: DelegationTarget) -> str | None:
    """Why a computer is tier 0 (any identity on it is the domain's), or None for an ordinary one."""
    if target.is_dc:
        return "domain controller"
    privileged = privileged_group_sids(snapshot)
    groups = sorted(
        path[-1] if len(path) == 1 else f"{path[-1]} (through {' -> '.join(path[:-1])})"
        for dn, path in snapshot.nested_groups(target.member_of, target.primary_group_sid).items()
        if snapshot.groups[dn].sid in privileged
    )
    if groups:
        return "member of " + ", ".join(groups)
    if target.admin_count:
        return "adminCount=1"
    return None


def _caller_may_read(snapshot: Snapshot, sd: SecurityDescriptor | None) -> bool:
    """Whether the caller's token is granted ReadProperty on the attribute by ``sd`` (MS-DTYP
    2.5.3.2 for one token: in DACL order, a deny takes away what no earlier ACE granted)."""
    if sd is None:
        return False
    token = snapshot.caller_sids
    granted = denied = 0
    for entry in access_entries(sd):
        if not entry.applies_to_object or entry.sid not in token:
            continue
        if entry.object_type not in (None, ALLOWED_TO_ACT_GUID, USER_ACCOUNT_RESTRICTIONS_GUID):
            continue
        if entry.allow:
            granted |= entry.effective_mask() & ~denied
        else:
            denied |= entry.effective_mask() & ~granted
    return bool(granted & ADS_RIGHT_DS_READ_PROP)


def _unreadable(snapshot: Snapshot) -> list[str]:
    dcs = [obj for obj in snapshot.sensitive if obj.kind == "domain controller"]
    return [obj.name for obj in dcs if not _caller_may_read(snapshot, obj.sd)] + [
        r.name for r in snapshot.accounts if not _caller_may_read(snapshot, r.sd)
    ]


def _account_name(snapshot: Snapshot, sid: str) -> str | None:
    """The sAMAccountName samba-tool and PowerShell take, for SIDs that resolved to an account."""
    principal = snapshot.principals.get(sid)
    if principal is None or principal.kind not in ("user", "computer", "group", "msa"):
        return None
    return principal.name.split("\\", 1)[-1]


def _principal_object(snapshot: Snapshot, sid: str, role: str, detail: str = "") -> AffectedObject:
    principal = snapshot.principals.get(sid)
    return AffectedObject((principal.dn if principal else None) or sid, snapshot.name_of(sid), role, detail)


def _del_principal(snapshot: Snapshot, account: str, sid: str) -> str:
    name = _account_name(snapshot, sid)
    if name is None:
        return f"# {snapshot.name_of(sid)} is no account samba-tool can name: use the PowerShell fix"
    return f"samba-tool delegation del-principal '{account}' '{name}'"


def _holders(snapshot: Snapshot, record: AccountRecord) -> str:
    """Who holds the account's password: a gMSA's readers, an sMSA's linked computer."""
    if record.account.group_managed:
        readers = ", ".join(snapshot.name_of(s) for s in record.account.allowed_sids)
        return f"password readers: {readers or 'none'}"
    return f"linked to {', '.join(record.account.linked_computers) or 'no computer'}"


def _on_account(snapshot: Snapshot, record: AccountRecord) -> Finding | None:
    """Case (a): the attribute set on a managed service account."""
    if record.allowed_to_act is None:
        return None
    sids = delegating_sids(snapshot, record.allowed_to_act)
    if not sids:
        return None  # an empty DACL (what samba-tool del-principal leaves) allows nobody
    names = ", ".join(snapshot.name_of(s) for s in sids)
    objects = [account_object(record, f"{ATTRIBUTE} set")]
    objects += [_principal_object(snapshot, s, "delegating principal", "may act as any user") for s in sids]
    return Finding(
        check=RBCD,
        subject=record.dn,
        subject_name=record.name,
        message=f"{names} may act on behalf of any user to the services of {record.name}",
        objects=tuple(objects),
        fix_powershell=f"Set-ADServiceAccount -Identity '{short_name(record)}' -PrincipalsAllowedToDelegateToAccount $null",
        fix_credo="; ".join(_del_principal(snapshot, record.name, s) for s in sids)
        + "  # no credo command changes delegation",
        level=Severity.HIGH,
    )


def _on_host(snapshot: Snapshot, target: DelegationTarget) -> Finding | None:
    """Case (b): a managed service account allowed by a domain controller or a privileged computer."""
    kind = host_sensitivity(snapshot, target)
    if kind is None:
        return None
    sids = delegating_sids(snapshot, target.allowed_to_act)
    hits: list[tuple[AccountRecord, list[str]]] = []
    for record in snapshot.accounts:
        # Allowed by its own SID, or by a group in its token (nested and primary, Everyone and
        # Authenticated Users included): the KDC checks the whole token.
        token = snapshot.token_of(record.account.sid)
        via = [s for s in sids if s in token]
        if via:
            hits.append((record, via))
    if not hits:
        return None
    role = "domain controller" if target.is_dc else "privileged computer"
    objects = [AffectedObject(target.dn, target.name, role, f"{kind}; {ATTRIBUTE} set")]
    for record, via in hits:
        how = ", ".join(
            "named directly" if s == record.account.sid else f"through {snapshot.name_of(s)}" for s in via
        )
        objects.append(account_object(record, f"{how}; {_holders(snapshot, record)}"))
    offending = list(dict.fromkeys(s for _record, via in hits for s in via))
    others = [s for s in sids if s not in offending]
    keep = ",".join(f"'{_account_name(snapshot, s) or s}'" for s in others) or "$null"
    accounts = ", ".join(record.name for record, _via in hits)
    host = target.name[:-1] if target.name.endswith("$") else target.name
    return Finding(
        check=RBCD,
        subject=target.dn,
        subject_name=target.name,
        message=f"{target.name} ({kind}) lets {accounts} act on behalf of any user to it: "
        "whoever can retrieve their passwords can impersonate anyone there",
        objects=tuple(objects),
        fix_powershell=f"Set-ADComputer -Identity '{host}' -PrincipalsAllowedToDelegateToAccount {keep}",
        fix_credo="; ".join(_del_principal(snapshot, target.name, s) for s in offending)
        + "  # no credo command changes delegation",
        level=Severity.CRITICAL,
    )


def rbcd(snapshot: Snapshot, options: AuditOptions) -> CheckOutcome:
    findings = [f for r in snapshot.accounts if (f := _on_account(snapshot, r)) is not None]
    findings += [f for t in snapshot.delegation_targets if (f := _on_host(snapshot, t)) is not None]
    return outcome(RBCD, findings, _unreadable(snapshot))


CHECKS: list[Check] = [(RBCD, rbcd)]
