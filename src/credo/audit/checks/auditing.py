"""Checks that a read of a secret leaves an event: SACL audit ACEs on gMSAs and KDS root keys.

Microsoft's gMSA guidance asks to audit access to sensitive resources. A read of a gMSA's
msDS-ManagedPassword (its current password) or of a KDS root key's msKds-RootKeyData (every gMSA
password of the forest, "Golden gMSA") is logged by a DC (event 4662) only when the object's SACL
holds a success audit ACE for ReadProperty on that attribute, or on the whole object, for a
trustee every reader matches (Everyone or Authenticated Users), and the DC's audit policy has
"Audit Directory Service Access" on. The SACL is readable with SeSecurityPrivilege only, so the
check needs a Domain Admin; for others it is not run.
"""

from __future__ import annotations

from dataclasses import dataclass

from credo.ad.attributes import KDS_ROOT_KEY_DATA_GUID, MANAGED_PASSWORD_GUID
from credo.ad.read_audit import read_audit_ace, reads_audited
from credo.ad.security import audit_ace_sddl
from credo.audit.checks.base import AuditOptions, Check, account_object, outcome, short_name
from credo.audit.findings import AffectedObject, CheckInfo, CheckOutcome, CheckStatus, Finding, Severity
from credo.audit.snapshot import Snapshot

__all__ = ["CHECKS"]

UNAUDITED = CheckInfo(
    id="password-reads-unaudited",
    severity=Severity.MEDIUM,
    title="Reads of gMSA passwords or KDS root keys leave no audit event",
    why=(
        "Without a success audit ACE for reading msDS-ManagedPassword (gMSAs) or msKds-RootKeyData "
        "(KDS root keys) in the object's SACL, a DC logs no event when someone reads them: a stolen "
        'password or a "Golden gMSA" read of the root key goes unseen.'
    ),
    needs="Domain Admins (SACLs are readable with SeSecurityPrivilege only)",
)


def _ps_fix(dn: str, attribute: str) -> str:
    return (
        f"$a = Get-Acl -Audit 'AD:{dn}'; $a.AddAuditRule((New-Object "
        "System.DirectoryServices.ActiveDirectoryAuditRule([Security.Principal.SecurityIdentifier]'S-1-1-0', "
        f"'ReadProperty', 'Success', [guid]'{attribute}'))); Set-Acl -AclObject $a 'AD:{dn}'"
    )


@dataclass(frozen=True)
class _Secret:
    """An object holding a secret attribute whose reads should be audited, as a finding shows it."""

    dn: str
    name: str
    attribute: str
    what: str  # "svcweb$'s password", "KDS root key <id>"
    affected: AffectedObject
    fix_credo: str


def _secrets(snapshot: Snapshot) -> list[_Secret]:
    found = []
    for r in snapshot.accounts:
        if r.account.group_managed:
            ace = audit_ace_sddl(read_audit_ace(MANAGED_PASSWORD_GUID))
            found.append(_Secret(r.dn, r.name, MANAGED_PASSWORD_GUID, f"{r.name}'s password",
                                 account_object(r, f"add to its SACL: {ace}"),
                                 f"credo account set {short_name(r)} --audit-reads"))  # fmt: skip
    for k in snapshot.kds_keys:
        ace = audit_ace_sddl(read_audit_ace(KDS_ROOT_KEY_DATA_GUID))
        found.append(_Secret(k.dn, k.key_id, KDS_ROOT_KEY_DATA_GUID, f"KDS root key {k.key_id}",
                             AffectedObject(k.dn, k.key_id, "KDS root key", f"add to its SACL: {ace}"),
                             "credo kds audit-reads"))  # fmt: skip
    return found


def password_reads_unaudited(snapshot: Snapshot, options: AuditOptions) -> CheckOutcome:
    secrets = _secrets(snapshot)
    if secrets and all(snapshot.sacls.get(s.dn.lower()) is None for s in secrets):
        return CheckOutcome(
            UNAUDITED, CheckStatus.NOT_RUN,
            reason=f"{snapshot.identity} cannot read SACLs (run as a Domain Admin)",
        )  # fmt: skip
    findings = []
    unreadable = []
    for secret in secrets:
        sacl = snapshot.sacls.get(secret.dn.lower())
        if sacl is None:
            unreadable.append(secret.name)
        elif not reads_audited(sacl, secret.attribute):
            findings.append(
                Finding(UNAUDITED, secret.dn, secret.name, f"reading {secret.what} leaves no audit event",
                        (secret.affected,), _ps_fix(secret.dn, secret.attribute), secret.fix_credo)
            )  # fmt: skip
    return outcome(UNAUDITED, findings, unreadable)


CHECKS: list[Check] = [(UNAUDITED, password_reads_unaudited)]
