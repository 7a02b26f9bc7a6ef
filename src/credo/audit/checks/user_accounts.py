"""Checks of user accounts that act as services: Kerberoastable SPN holders, never-expiring passwords.

A user object with a servicePrincipalName is a service the KDC issues tickets for, to anyone who
asks: any authenticated user may send a TGS-REQ for the SPN (MS-KILE 3.3.5), and the ticket's
encrypted part is encrypted with a key derived from the user's password (MS-KILE 3.3.5.7 picks
its type from the account's msDS-SupportedEncryptionTypes, MS-KILE 2.2.7; unset or without an AES
bit, RC4, whose key is the unsalted MD4 of the password). The ticket is then a password hash to
crack offline, at leisure and unseen ("Kerberoasting"). A password a person chose and that never
changes falls to that; a gMSA's (240 random bytes, rotated by the DCs) does not: the fix moves the
service to one, which `credo migrate plan` prepares.

User accounts without an SPN whose password never expires (DONT_EXPIRE_PASSWD, MS-ADTS 2.2.16)
and that look like services (by name or description, see ``looks_like_service``) are reported
too, at low severity: the same kind of account, one SPN away from the above.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from credo.ad.names import dns_domain_of
from credo.ad.sids import RID_ADMINISTRATOR, RID_GUEST, RID_KRBTGT
from credo.audit.checks.base import AuditOptions, Check, outcome
from credo.audit.checks.hygiene import enctype_names
from credo.audit.findings import AffectedObject, CheckInfo, CheckOutcome, Finding, Severity
from credo.audit.snapshot import Snapshot, UserServiceRecord, privileged_group_sids
from credo.names import gmsa_name_for_user

__all__ = ["CHECKS", "USER_SERVICE_ACCOUNTS", "Classification", "classify", "looks_like_service"]

# userAccountControl bits (MS-ADTS 2.2.16).
UF_ACCOUNTDISABLE = 0x2
UF_INTERDOMAIN_TRUST_ACCOUNT = 0x800  # a trust's account (NAME$): its password is the trust's
UF_WORKSTATION_TRUST_ACCOUNT = 0x1000
UF_SERVER_TRUST_ACCOUNT = 0x2000
UF_DONT_EXPIRE_PASSWD = 0x10000
NOT_A_USER = UF_INTERDOMAIN_TRUST_ACCOUNT | UF_WORKSTATION_TRUST_ACCOUNT | UF_SERVER_TRUST_ACCOUNT
# msDS-SupportedEncryptionTypes AES128 | AES256 (MS-KILE 2.2.7).
AES_BITS = 0x8 | 0x10
# A password older than this on an SPN holder is "old" (a year: the usual rotation policy's ceiling).
OLD_PASSWORD_DAYS = 365
# Built-in accounts that are no services: Administrator and Guest (policy, not roasting, governs
# them) and krbtgt (disabled; its keys sign every TGT and are audited elsewhere).
BUILT_IN_RIDS = (RID_ADMINISTRATOR, RID_GUEST, RID_KRBTGT)

# The name heuristic: service words that mark an account as a service wherever they stand as a
# separate part of the name (split on _ - . and spaces), and the unambiguous ones that do also
# glued to the start or end ("svcbackup", "backupsvc"). "app", "sql", "task", "batch" and "sa"
# only count as parts: glued, they begin ordinary names ("appleton", "sasha").
SERVICE_PARTS = frozenset({"svc", "srv", "service", "sa", "app", "sql", "task", "batch"})
SERVICE_AFFIXES = ("svc", "srv", "service")
_SEPARATORS = re.compile(r"[_\-. ]+")

USER_SERVICE_ACCOUNTS = CheckInfo(
    id="user-service-accounts",
    severity=Severity.CRITICAL,
    title="User account used as a service (Kerberoastable SPN, or a password that never expires)",
    why=(
        "Any authenticated user can request a service ticket for a user account's SPN and crack the "
        "account's password offline from it (Kerberoasting): fastest when the account has RC4 keys "
        "only, worst when it is privileged. A gMSA's password is random, long and rotated by the "
        "DCs: move such services to one."
    ),
)


@dataclass(frozen=True)
class Classification:
    """Why a user account is reported, and at what severity."""

    level: Severity
    rc4_only: bool
    privileged: tuple[str, ...]  # "Domain Admins (svc_x -> Ops -> Domain Admins)", "adminCount=1"
    never_expires: bool
    password_age_days: int | None  # None: never set, or must change at next logon


def looks_like_service(record: UserServiceRecord) -> bool:
    """Whether the name or description says "service": see SERVICE_PARTS and SERVICE_AFFIXES."""
    name = record.name.lower().removesuffix("$")
    parts = {p for p in _SEPARATORS.split(name) if p}
    if parts & SERVICE_PARTS or name.startswith(SERVICE_AFFIXES) or name.endswith(SERVICE_AFFIXES):
        return True
    return "service" in record.description.lower()


def _rid(sid: str) -> int | None:
    tail = sid.rsplit("-", 1)[-1]
    return int(tail) if sid.startswith("S-1-5-21-") and tail.isdigit() else None


def _privileged(snapshot: Snapshot, record: UserServiceRecord) -> tuple[str, ...]:
    privileged = privileged_group_sids(snapshot)
    paths = snapshot.nested_groups(record.member_of, record.primary_group_sid)
    hits = sorted(
        (len(path), snapshot.groups[dn].name, path)
        for dn, path in paths.items()
        if snapshot.groups[dn].sid in privileged
    )
    found = tuple(f"{name} ({' -> '.join([record.name, *path])})" for _n, name, path in hits)
    if not found and record.admin_count:
        # adminCount stays 1 after the account leaves the protected group; it still keeps the
        # AdminSDHolder's ACL and, usually, the rights it was given then.
        found = ("adminCount=1",)
    return found


def password_age(now: datetime, record: UserServiceRecord) -> int | None:
    """Days since pwdLastSet (a FILETIME), or None when never set or to be changed at next logon."""
    return (now - record.pwd_last_set).days if record.pwd_last_set else None


def classify(snapshot: Snapshot, record: UserServiceRecord) -> Classification | None:
    """The finding's severity for ``record``, or None when it is no service user to report."""
    if record.uac & (UF_ACCOUNTDISABLE | NOT_A_USER) or _rid(record.sid) in BUILT_IN_RIDS:
        return None
    never_expires = bool(record.uac & UF_DONT_EXPIRE_PASSWD)
    age = password_age(snapshot.now, record)
    if not record.spns:
        if never_expires and looks_like_service(record):
            return Classification(Severity.LOW, False, (), True, age)
        return None
    # Unset or 0: the KDC's default for the account, RC4 (MS-KILE 3.3.5.7); any AES bit makes the
    # KDC encrypt the ticket with AES, which is far slower to crack.
    rc4_only = not (record.enctypes or 0) & AES_BITS
    privileged = _privileged(snapshot, record)
    if rc4_only or privileged:
        level = Severity.CRITICAL
    elif never_expires or (age is not None and age > OLD_PASSWORD_DAYS):
        level = Severity.HIGH
    else:
        level = Severity.MEDIUM
    return Classification(level, rc4_only, privileged, never_expires, age)


def _fixes(snapshot: Snapshot, record: UserServiceRecord) -> tuple[str, str]:
    """Microsoft's move to a gMSA, in one line: create it, move each SPN, then run the service as it."""
    gmsa = gmsa_name_for_user(record.name)
    steps = [
        f"New-ADServiceAccount -Name '{gmsa}' -DNSHostName '{gmsa}.{dns_domain_of(snapshot.base_dn)}' "
        "-PrincipalsAllowedToRetrieveManagedPassword '<hosts>' -KerberosEncryptionType AES256"
    ]
    for spn in record.spns:
        steps.append(f"Set-ADUser -Identity '{record.name}' -ServicePrincipalNames @{{Remove='{spn}'}}")
        steps.append(f"Set-ADServiceAccount -Identity '{gmsa}' -ServicePrincipalNames @{{Add='{spn}'}}")
    powershell = (
        "; ".join(steps) + f"  # then run the service as {gmsa}$ and Disable-ADAccount '{record.name}'"
    )
    return powershell, f"credo migrate plan {record.name} --hosts '<host1,host2>'"


def _message(record: UserServiceRecord, found: Classification) -> str:
    if not record.spns:
        return (
            f"{record.name} looks like a service account and its password never expires: "
            "one SPN away from being Kerberoastable, and never rotated"
        )
    spn = record.spns[0] + (f" (and {len(record.spns) - 1} more)" if len(record.spns) > 1 else "")
    reasons = []
    if found.rc4_only:
        des_only = record.enctypes and not record.enctypes & 0x4 and record.enctypes & 0x3
        reasons.append("only DES keys" if des_only else "only RC4 keys")
    if found.privileged:
        reasons.append(f"privileges ({', '.join(p.split(' (')[0] for p in found.privileged)})")
    if found.never_expires:
        reasons.append("a password that never expires")
    elif found.password_age_days is not None and found.password_age_days > OLD_PASSWORD_DAYS:
        reasons.append(f"a password {found.password_age_days} days old")
    why = "".join(f", {r}" for r in reasons[:-1]) + (f" and {reasons[-1]}" if reasons else "")
    if found.level is Severity.CRITICAL:
        effect = "its tickets can be cracked offline" + (
            ", and it opens the domain" if found.privileged else ""
        )
    else:
        effect = "any authenticated user can request its tickets and crack them offline"
    return f"{record.name} has SPN {spn}{why}: {effect}"


def _detail(record: UserServiceRecord, found: Classification) -> str:
    parts = []
    if record.spns:
        parts.append("SPNs: " + ", ".join(record.spns))
    age = "unknown" if found.password_age_days is None else f"{found.password_age_days} days"
    parts.append(f"password age: {age}" + (" (never expires)" if found.never_expires else ""))
    parts.append("enctypes: " + enctype_names(record.enctypes or None))
    if found.privileged:
        parts.append("privileged: " + "; ".join(found.privileged))
    return "; ".join(parts)


def user_service_accounts(snapshot: Snapshot, options: AuditOptions) -> CheckOutcome:
    findings = []
    for record in sorted(snapshot.users, key=lambda r: r.name.lower()):
        found = classify(snapshot, record)
        if found is None:
            continue
        powershell, credo = _fixes(snapshot, record)
        findings.append(
            Finding(USER_SERVICE_ACCOUNTS, record.dn, record.name, _message(record, found),
                    (AffectedObject(record.dn, record.name, "user account", _detail(record, found)),),
                    powershell, credo, level=found.level)
        )  # fmt: skip
    return outcome(USER_SERVICE_ACCOUNTS, findings)


CHECKS: list[Check] = [(USER_SERVICE_ACCOUNTS, user_service_accounts)]
