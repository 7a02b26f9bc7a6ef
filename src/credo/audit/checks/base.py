"""What every check shares: its signature, options, and the principals that are admins anyway."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from credo.ad.security import INHERITED_ACE, SecurityDescriptor, access_entries, access_entry_sddl
from credo.audit.findings import AffectedObject, CheckInfo, CheckOutcome, CheckStatus, Finding
from credo.audit.snapshot import (
    RID_DOMAIN_ADMINS,
    RID_DOMAIN_CONTROLLERS,
    RID_ENTERPRISE_ADMINS,
    RID_SCHEMA_ADMINS,
    SID_ACCOUNT_OPERATORS,
    SID_ADMINISTRATORS,
    SID_SYSTEM,
    AccountRecord,
    Snapshot,
)

__all__ = ["AuditOptions", "Check", "account_object", "acl_removal", "admin_sids", "outcome", "short_name"]

# Well-known SIDs that hold rights by design and are not reported as "non-admin" (MS-DTYP 2.4.2.4):
# SYSTEM, ENTERPRISE DOMAIN CONTROLLERS, CREATOR OWNER (inherit-only placeholders), SELF
# (the account's own validated writes), Administrators and Account Operators (full control on
# accounts by the default security descriptor of the class, MS-ADTS 6.1.1.2.x).
WELL_KNOWN_TRUSTED = {SID_SYSTEM, "S-1-5-9", "S-1-3-0", "S-1-5-10", SID_ADMINISTRATORS, SID_ACCOUNT_OPERATORS}


@dataclass(frozen=True)
class AuditOptions:
    stale_days: int = 90


Check = tuple[CheckInfo, Callable[[Snapshot, AuditOptions], CheckOutcome]]


def admin_sids(snapshot: Snapshot) -> set[str]:
    d = snapshot.domain_sid
    return WELL_KNOWN_TRUSTED | {
        f"{d}-{rid}"
        for rid in (RID_DOMAIN_ADMINS, RID_ENTERPRISE_ADMINS, RID_SCHEMA_ADMINS, RID_DOMAIN_CONTROLLERS)
    }


def acl_removal(dn: str, sd: SecurityDescriptor | None, sid: str) -> str:
    """The samba-tool command that removes ``sid``'s explicit ACEs from ``dn``'s DACL, each named
    exactly in SDDL; inherited ones can only be removed where they are set (the parent)."""
    entries = access_entries(sd) if sd is not None else []
    explicit = [e for e in entries if e.sid == sid and not e.flags & INHERITED_ACE]
    commands = [
        f"samba-tool dsacl delete --objectdn='{dn}' --sddl='{access_entry_sddl(e)}'" for e in explicit
    ]
    if any(e.sid == sid and e.flags & INHERITED_ACE for e in entries):
        commands.append(f"# {sid} also holds rights inherited from a parent of {dn}: remove them there")
    return "; ".join(commands) or f"# no explicit ACE of {sid} on {dn}"


def short_name(record: AccountRecord) -> str:
    """``svcauto$`` -> ``svcauto``: the -Identity PowerShell and credo take."""
    return record.name[:-1] if record.name.endswith("$") else record.name


def account_object(record: AccountRecord, detail: str = "") -> AffectedObject:
    kind = "gMSA" if record.account.group_managed else "sMSA"
    return AffectedObject(record.dn, record.name, kind, detail)


def outcome(
    info: CheckInfo, findings: Iterable[Finding], unreadable: list[str] | None = None
) -> CheckOutcome:
    """PASSED only when nothing was found and nothing was left unread."""
    found = tuple(findings)
    reason = None
    if unreadable:
        shown = ", ".join(unreadable[:5]) + (
            f" and {len(unreadable) - 5} more" if len(unreadable) > 5 else ""
        )
        reason = f"could not read what it needs on {shown}"
    if found:
        return CheckOutcome(info, CheckStatus.FAILED, found, reason)
    if unreadable:
        return CheckOutcome(info, CheckStatus.INCOMPLETE, (), reason)
    return CheckOutcome(info, CheckStatus.PASSED)
