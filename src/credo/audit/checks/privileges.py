"""Checks of what a managed service account can do: privileged groups, writes to sensitive objects.

A gMSA's password is held by every computer allowed to retrieve it, so whatever the gMSA can do,
each of those hosts can do: Microsoft's gMSA guidance asks to keep them out of privileged groups
and away from write access to tier-0 objects.
"""

from __future__ import annotations

from credo.audit.acl import any_effective_write, any_property_write_by_sid, describe_rights
from credo.audit.checks.base import AuditOptions, Check, account_object, acl_removal, outcome, short_name
from credo.audit.findings import AffectedObject, CheckInfo, CheckOutcome, Finding, Severity
from credo.audit.snapshot import Snapshot, privileged_group_sids

__all__ = ["CHECKS"]

PRIVILEGED_GROUP = CheckInfo(
    id="privileged-group",
    severity=Severity.CRITICAL,
    title="Managed service account in a privileged group",
    why=(
        "Every host allowed to retrieve the password can act as the account: membership in Domain, "
        "Enterprise or Schema Admins, Administrators, an Operators group, DnsAdmins, Group Policy "
        "Creator Owners or Key Admins, direct or nested, hands those hosts control of the domain."
    ),
)

SENSITIVE_WRITE = CheckInfo(
    id="sensitive-write",
    severity=Severity.CRITICAL,
    title="Managed service account can write to a sensitive object",
    why=(
        "Write access (GenericAll, GenericWrite, WriteProperty, WriteDacl, WriteOwner, or ownership) "
        "of the account, or of a group it belongs to, on the domain root, AdminSDHolder, a GPO, a "
        "privileged group or a domain controller object is a path to domain compromise for every "
        "host that can retrieve its password."
    ),
)


def privileged_group(snapshot: Snapshot, options: AuditOptions) -> CheckOutcome:
    privileged = privileged_group_sids(snapshot)
    findings = []
    for record in snapshot.accounts:
        paths = snapshot.nested_groups(record.member_of, record.primary_group_sid)
        hits = [
            (snapshot.groups[dn], path) for dn, path in paths.items() if snapshot.groups[dn].sid in privileged
        ]
        if not hits:
            continue
        hits.sort(key=lambda item: (len(item[1]), item[0].name.lower()))
        objects = [account_object(record)]
        objects += [
            AffectedObject(group.dn, group.name, "privileged group", " -> ".join([record.name, *path]))
            for group, path in hits
        ]
        # The fix removes the account from the group it is directly in on the way to the privilege.
        direct = sorted({path[0] for _group, path in hits})
        name = short_name(record)
        findings.append(
            Finding(
                check=PRIVILEGED_GROUP,
                subject=record.dn,
                subject_name=record.name,
                message=f"{record.name} is a member of {', '.join(g.name for g, _ in hits)}",
                objects=tuple(objects),
                fix_powershell="; ".join(f"Remove-ADGroupMember -Identity '{g}' -Members '{record.name}'" for g in direct),
                fix_credo="; ".join(f"samba-tool group removemembers '{g}' '{record.name}'" for g in direct)
                + f"  # no credo command changes groups; then `credo gmsa show {name}`",
            )
        )  # fmt: skip
    return outcome(PRIVILEGED_GROUP, findings)


def sensitive_write(snapshot: Snapshot, options: AuditOptions) -> CheckOutcome:
    unreadable = [obj.name for obj in snapshot.sensitive if obj.sd is None]
    writers = [(obj, any_property_write_by_sid(obj.sd)) for obj in snapshot.sensitive if obj.sd is not None]
    broad = {"S-1-1-0", "S-1-5-11"}  # rights of everyone are a finding about everyone, not this account
    findings = []
    for record in snapshot.accounts:
        full_token = snapshot.token_sids(record) | broad
        token = full_token - broad
        objects = [account_object(record)]
        fixes_ps: list[str] = []
        fixes_samba: list[str] = []
        for obj, rights in writers:
            assert obj.sd is not None
            # What the account may really write there: its whole token's allows minus its denies,
            # a deny through any of its groups included (MS-DTYP 2.5.3.2).
            effective = any_effective_write(obj.sd, full_token)
            for sid in sorted(token & rights.keys()):
                if not rights[sid] & effective:
                    continue
                held_by = "the account itself" if sid == record.account.sid else snapshot.name_of(sid)
                detail = f"{describe_rights(rights[sid] & effective)} via {held_by}"
                owner = " (owner)" if obj.sd is not None and obj.sd.owner == sid else ""
                objects.append(AffectedObject(obj.dn, obj.name, obj.kind, detail + owner))
                fixes_ps.append(f"dsacls '{obj.dn}' /R '{snapshot.name_of(sid)}'")
                fixes_samba.append(acl_removal(obj.dn, obj.sd, sid))
        if len(objects) == 1:
            continue
        findings.append(
            Finding(
                check=SENSITIVE_WRITE,
                subject=record.dn,
                subject_name=record.name,
                message=f"{record.name} can write to {len(objects) - 1} sensitive object(s): "
                + ", ".join(sorted({o.name for o in objects[1:]})),
                objects=tuple(objects),
                fix_powershell="; ".join(dict.fromkeys(fixes_ps)),
                fix_credo="; ".join(dict.fromkeys(fixes_samba))
                + "  # no credo command edits ACLs; then `credo audit --check sensitive-write`",
            )
        )
    return outcome(SENSITIVE_WRITE, findings, unreadable)


CHECKS: list[Check] = [(PRIVILEGED_GROUP, privileged_group), (SENSITIVE_WRITE, sensitive_write)]
