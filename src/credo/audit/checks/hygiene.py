"""Checks of how an account is configured: encryption types, location, delegation, staleness, links."""

from __future__ import annotations

from datetime import timedelta

from credo.audit.checks.base import AuditOptions, Check, account_object, outcome, short_name
from credo.audit.findings import CheckInfo, CheckOutcome, Finding, Severity
from credo.audit.snapshot import AccountRecord, Snapshot
from credo.krb.keys import WEAK_ENCTYPE_BITS
from credo.krb.keys import enctype_names as krb_enctype_names

__all__ = ["CHECKS", "enctype_names"]

# userAccountControl bits (MS-ADTS 2.2.16).
UF_USE_DES_KEY_ONLY = 0x200000
UF_TRUSTED_FOR_DELEGATION = 0x80000
UF_TRUSTED_TO_AUTH_FOR_DELEGATION = 0x1000000

WEAK_ENCTYPES = CheckInfo(
    id="weak-enctypes",
    severity=Severity.MEDIUM,
    title="Weak Kerberos encryption types allowed (RC4, DES)",
    why=(
        "Tickets for the account encrypted with RC4 or DES can be cracked offline (Kerberoasting) or "
        "forged more easily; with no msDS-SupportedEncryptionTypes the KDC falls back to RC4."
    ),
)
OUTSIDE_CONTAINER = CheckInfo(
    id="outside-msa-container",
    severity=Severity.LOW,
    title="Managed service account outside CN=Managed Service Accounts",
    why=(
        "Accounts elsewhere inherit the ACLs of their OU, which are rarely as tight as those of the "
        "Managed Service Accounts container, and escape reviews that look there."
    ),
)
UNCONSTRAINED = CheckInfo(
    id="unconstrained-delegation",
    severity=Severity.CRITICAL,
    title="Unconstrained delegation",
    why=(
        "TRUSTED_FOR_DELEGATION makes every user's forwarded TGT land with the account: whoever holds "
        "its password can impersonate any user, domain admins included, anywhere."
    ),
)
PROTOCOL_TRANSITION = CheckInfo(
    id="protocol-transition",
    severity=Severity.HIGH,
    title="Constrained delegation with protocol transition",
    why=(
        "TRUSTED_TO_AUTH_FOR_DELEGATION with msDS-AllowedToDelegateTo lets the account obtain tickets "
        "as any user, without that user's involvement, to the listed services (S4U2Self + S4U2Proxy)."
    ),
)
STALE = CheckInfo(
    id="stale-account",
    severity=Severity.LOW,
    title="Stale managed service account (no logon for N days)",
    why=(
        "An account nobody uses keeps its readers and rights: remove it. Accounts that never logged on "
        "count once they are older than N days (younger ones may simply not be in service yet)."
    ),
)
DISABLED_WITH_READERS = CheckInfo(
    id="disabled-with-readers",
    severity=Severity.MEDIUM,
    title="Disabled gMSA that still has password readers",
    why=(
        "The password is still computed and handed to its readers; re-enabling the account (one "
        "attribute) brings it back with them. Remove the readers or the account."
    ),
)
SMSA_UNLINKED = CheckInfo(
    id="smsa-unlinked",
    severity=Severity.LOW,
    title="Standalone MSA linked to no computer",
    why="An sMSA is usable by the one computer linked to it (msDS-HostServiceAccount); unlinked, it is unused.",
)


def enctype_names(value: int | None) -> str:
    if value is None:
        return "not set (KDC default: RC4)"
    return ",".join(krb_enctype_names(value)) or f"0x{value:x}"


def _weak(record: AccountRecord) -> bool:
    value = record.account.supported_enctypes
    if record.uac & UF_USE_DES_KEY_ONLY:
        return True
    # Unset or 0: the KDC uses its default, RC4 (DefaultDomainSupportedEncTypes, MS-KILE 3.3.5.7).
    return not value or bool(value & WEAK_ENCTYPE_BITS)


def weak_enctypes(snapshot: Snapshot, options: AuditOptions) -> CheckOutcome:
    findings = []
    for record in snapshot.accounts:
        if not _weak(record):
            continue
        name = short_name(record)
        detail = enctype_names(record.account.supported_enctypes or None)
        if record.uac & UF_USE_DES_KEY_ONLY:
            detail += "; USE_DES_KEY_ONLY set"
        findings.append(
            Finding(WEAK_ENCTYPES, record.dn, record.name, f"{record.name} allows {detail}",
                    (account_object(record, detail),),
                    f"Set-ADServiceAccount -Identity '{name}' -KerberosEncryptionType AES128,AES256",
                    f"credo account set {name} --enctypes AES128,AES256")
        )  # fmt: skip
    return outcome(WEAK_ENCTYPES, findings)


def outside_container(snapshot: Snapshot, options: AuditOptions) -> CheckOutcome:
    expected = f"cn=managed service accounts,{snapshot.base_dn}".lower()
    findings = []
    for record in snapshot.accounts:
        parent = record.dn.split(",", 1)[1] if "," in record.dn else ""
        if parent.lower() == expected:
            continue
        findings.append(
            Finding(OUTSIDE_CONTAINER, record.dn, record.name, f"{record.name} lives in {parent}",
                    (account_object(record, f"in {parent}"),),
                    f"Move-ADObject -Identity '{record.dn}' -TargetPath 'CN=Managed Service Accounts,{snapshot.base_dn}'",
                    f"samba-tool user move '{record.name}' 'CN=Managed Service Accounts'  # no credo command moves accounts")
        )  # fmt: skip
    return outcome(OUTSIDE_CONTAINER, findings)


def unconstrained(snapshot: Snapshot, options: AuditOptions) -> CheckOutcome:
    findings = []
    for record in snapshot.accounts:
        if record.uac & UF_TRUSTED_FOR_DELEGATION:
            name = short_name(record)
            findings.append(
                Finding(UNCONSTRAINED, record.dn, record.name, f"{record.name} is trusted for unconstrained delegation",
                        (account_object(record, "TRUSTED_FOR_DELEGATION"),),
                        f"Set-ADAccountControl -Identity '{record.name}' -TrustedForDelegation $false",
                        f"samba-tool delegation for-any-service '{record.name}' off"
                        f"  # no credo command changes delegation; then `credo gmsa show {name}`")
            )  # fmt: skip
    return outcome(UNCONSTRAINED, findings)


def protocol_transition(snapshot: Snapshot, options: AuditOptions) -> CheckOutcome:
    findings = []
    for record in snapshot.accounts:
        if record.uac & UF_TRUSTED_TO_AUTH_FOR_DELEGATION:
            targets = ", ".join(record.delegate_to) or "no service listed"
            findings.append(
                Finding(PROTOCOL_TRANSITION, record.dn, record.name,
                        f"{record.name} may delegate to {targets} with protocol transition",
                        (account_object(record, f"TRUSTED_TO_AUTH_FOR_DELEGATION to {targets}"),),
                        f"Set-ADAccountControl -Identity '{record.name}' -TrustedToAuthForDelegation $false",
                        f"samba-tool delegation for-any-protocol '{record.name}' off  # no credo command changes delegation")
            )  # fmt: skip
    return outcome(PROTOCOL_TRANSITION, findings)


def stale(snapshot: Snapshot, options: AuditOptions) -> CheckOutcome:
    limit = snapshot.now - timedelta(days=options.stale_days)
    findings = []
    for record in snapshot.accounts:
        created = record.account.when_created
        if record.last_logon is not None:
            if record.last_logon >= limit:
                continue
            detail = f"last logon {record.last_logon:%Y-%m-%d}"
        else:
            if created is None or created >= limit:
                continue  # never used, but younger than N days: maybe not in service yet
            detail = f"never logged on, created {created:%Y-%m-%d}"
        name = short_name(record)
        findings.append(
            Finding(STALE, record.dn, record.name, f"{record.name}: {detail} (over {options.stale_days} days)",
                    (account_object(record, detail),),
                    f"Remove-ADServiceAccount -Identity '{name}'  # or Disable-ADAccount first",
                    f"credo account remove {name}  # or: credo account set {name} --disable")
        )  # fmt: skip
    return outcome(STALE, findings)


def disabled_with_readers(snapshot: Snapshot, options: AuditOptions) -> CheckOutcome:
    findings = []
    for record in snapshot.accounts:
        if record.account.enabled or not record.account.group_managed or not record.account.allowed_sids:
            continue
        name = short_name(record)
        readers = ", ".join(snapshot.name_of(s) for s in record.account.allowed_sids)
        removes = " ".join(
            f"--remove-allowed '{snapshot.name_of(s).split(chr(92))[-1]}'"
            for s in record.account.allowed_sids
        )
        findings.append(
            Finding(DISABLED_WITH_READERS, record.dn, record.name, f"{record.name} is disabled but readable by {readers}",
                    (account_object(record, f"disabled; readers: {readers}"),),
                    f"Set-ADServiceAccount -Identity '{name}' -PrincipalsAllowedToRetrieveManagedPassword $null"
                    f"  # or Remove-ADServiceAccount -Identity '{name}'",
                    f"credo account set {name} {removes}  # or: credo account remove {name}")
        )  # fmt: skip
    return outcome(DISABLED_WITH_READERS, findings)


def smsa_unlinked(snapshot: Snapshot, options: AuditOptions) -> CheckOutcome:
    findings = []
    for record in snapshot.accounts:
        if record.account.group_managed or record.account.linked_computers:
            continue
        name = short_name(record)
        findings.append(
            Finding(SMSA_UNLINKED, record.dn, record.name, f"standalone MSA {record.name} is linked to no computer",
                    (account_object(record, "msDS-HostServiceAccountBL empty"),),
                    f"Add-ADComputerServiceAccount -Computer '<computer>' -ServiceAccount '{name}'"
                    f"  # or Remove-ADServiceAccount -Identity '{name}'",
                    f"credo account link {name} --computer '<computer>'  # or: credo account remove {name}")
        )  # fmt: skip
    return outcome(SMSA_UNLINKED, findings)


CHECKS: list[Check] = [
    (WEAK_ENCTYPES, weak_enctypes),
    (OUTSIDE_CONTAINER, outside_container),
    (UNCONSTRAINED, unconstrained),
    (PROTOCOL_TRANSITION, protocol_transition),
    (STALE, stale),
    (DISABLED_WITH_READERS, disabled_with_readers),
    (SMSA_UNLINKED, smsa_unlinked),
]
