"""Checks of who can get at a gMSA's password: readers, who can change readers, KDS root keys.

- The readers are the allow ACEs of msDS-GroupMSAMembership (PrincipalsAllowedToRetrieveManaged
  Password, MS-ADTS 3.1.1.4.4); a broad group there gives the account to every member.
- Who may write msDS-GroupMSAMembership, or holds GenericAll/GenericWrite/WriteDacl/WriteOwner on
  the account, can add themselves as a reader.
- Whoever reads msKds-RootKeyData can compute every gMSA password of the forest offline
  ("Golden gMSA"; MS-GKDI 3.1.4.1). The attribute is confidential (searchFlags 0x80), so reading
  it takes ReadProperty and ControlAccess on it (MS-ADTS 3.1.1.4.3).
"""

from __future__ import annotations

from credo.ad.security import (
    ADS_RIGHT_DS_CONTROL_ACCESS,
    ADS_RIGHT_DS_READ_PROP,
    ADS_RIGHT_DS_WRITE_PROP,
    WRITE_DAC,
    WRITE_OWNER,
)
from credo.audit.acl import GMSA_MEMBERSHIP_GUID, KDS_ROOT_KEY_DATA_GUID, describe_rights, rights_by_sid
from credo.audit.checks.base import (
    AuditOptions,
    Check,
    account_object,
    acl_removal,
    admin_sids,
    outcome,
    short_name,
)
from credo.audit.findings import AffectedObject, CheckInfo, CheckOutcome, CheckStatus, Finding, Severity
from credo.audit.snapshot import RID_DOMAIN_COMPUTERS, RID_DOMAIN_USERS, AccountRecord, Snapshot

__all__ = ["CHECKS"]

BROAD_READERS = CheckInfo(
    id="password-broad-readers",
    severity=Severity.HIGH,
    title="gMSA password readable by a broad group",
    why=(
        "Everyone, Authenticated Users, Domain Users, Domain Computers or Users among the principals "
        "allowed to retrieve the managed password lets any account of the domain become the gMSA."
    ),
)
USER_READERS = CheckInfo(
    id="password-user-readers",
    severity=Severity.MEDIUM,
    title="gMSA password readable by a user account",
    why=(
        "A gMSA is meant for computers: a user account (a person, or a service with a password) "
        "allowed to retrieve the password can phish-and-replay its way to the gMSA."
    ),
)
NO_READERS = CheckInfo(
    id="password-no-readers",
    severity=Severity.LOW,
    title="gMSA password readable by nobody",
    why="No principal may retrieve the password: the account is unused or misconfigured (clean it up).",
)
TAKEOVER = CheckInfo(
    id="membership-writers",
    severity=Severity.HIGH,
    title="Non-admin principal can change who reads the password or take over the gMSA",
    why=(
        "Write access to msDS-GroupMSAMembership, or GenericAll, GenericWrite, WriteDacl or "
        "WriteOwner on the account (or owning it), lets a principal add itself as a reader and "
        "retrieve the password."
    ),
)
KDS_READERS = CheckInfo(
    id="kds-root-key-readers",
    severity=Severity.CRITICAL,
    title="KDS root key data readable beyond Domain Admins, Enterprise Admins and SYSTEM",
    why=(
        "msKds-RootKeyData lets its reader compute every gMSA password of the forest, past and future, "
        'offline ("Golden gMSA"): only Domain Admins, Enterprise Admins and SYSTEM should read it.'
    ),
    needs="Domain Admins (the KDS root keys' security descriptors are readable by admins only)",
)
KDS_MISSING = CheckInfo(
    id="kds-root-key-missing",
    severity=Severity.HIGH,
    title="No KDS root key, or none usable yet",
    why="Without a KDS root key whose start time has passed, DCs cannot compute gMSA passwords.",
    needs="Domain Admins (msKds-UseStartTime is readable by admins only)",
)

EVERYONE, ANONYMOUS, AUTHENTICATED_USERS, BUILTIN_USERS = "S-1-1-0", "S-1-5-7", "S-1-5-11", "S-1-5-32-545"


def _broad_sids(snapshot: Snapshot) -> set[str]:
    d = snapshot.domain_sid
    return {
        EVERYONE,
        ANONYMOUS,
        AUTHENTICATED_USERS,
        BUILTIN_USERS,
        f"{d}-{RID_DOMAIN_USERS}",
        f"{d}-{RID_DOMAIN_COMPUTERS}",
    }


def _gmsas(snapshot: Snapshot) -> list[AccountRecord]:
    return [r for r in snapshot.accounts if r.account.group_managed]


def _readers(record: AccountRecord) -> list[str]:
    return list(record.account.allowed_sids)


def _reader_fix(snapshot: Snapshot, record: AccountRecord, remove: list[str]) -> tuple[str, str]:
    name = short_name(record)
    keep = [snapshot.name_of(s) for s in record.account.allowed_sids if s not in remove]
    kept = ",".join(f"'{k.split(chr(92))[-1]}'" for k in keep) or "$null"
    credo = " ".join(f"--remove-allowed '{snapshot.name_of(s).split(chr(92))[-1]}'" for s in remove)
    return (
        f"Set-ADServiceAccount -Identity '{name}' -PrincipalsAllowedToRetrieveManagedPassword {kept}",
        f"credo account set {name} {credo}",
    )


def broad_readers(snapshot: Snapshot, options: AuditOptions) -> CheckOutcome:
    broad = _broad_sids(snapshot)
    findings = []
    for record in _gmsas(snapshot):
        hits = [s for s in _readers(record) if s in broad]
        if hits:
            ps, credo = _reader_fix(snapshot, record, hits)
            objects = [account_object(record)] + [
                AffectedObject(snapshot.principals[s].dn or s, snapshot.name_of(s), "reader", "broad group")
                for s in hits
            ]
            findings.append(
                Finding(BROAD_READERS, record.dn, record.name,
                        f"{record.name}'s password is readable by {', '.join(snapshot.name_of(s) for s in hits)}",
                        tuple(objects), ps, credo)
            )  # fmt: skip
    return outcome(BROAD_READERS, findings)


def user_readers(snapshot: Snapshot, options: AuditOptions) -> CheckOutcome:
    # The domain's built-in Administrator (RID 500) controls the domain anyway: Samba adds the
    # creator as a reader of every gMSA it creates, and reporting it would only be noise.
    trusted = admin_sids(snapshot) | {f"{snapshot.domain_sid}-500"}
    findings = []
    for record in _gmsas(snapshot):
        hits = [
            s
            for s in _readers(record)
            if snapshot.principals.get(s) and snapshot.principals[s].kind == "user" and s not in trusted
        ]
        if hits:
            ps, credo = _reader_fix(snapshot, record, hits)
            objects = [account_object(record)] + [
                AffectedObject(snapshot.principals[s].dn or s, snapshot.name_of(s), "reader", "user account")
                for s in hits
            ]
            findings.append(
                Finding(USER_READERS, record.dn, record.name,
                        f"{record.name}'s password is readable by user account(s) "
                        f"{', '.join(snapshot.name_of(s) for s in hits)}", tuple(objects), ps, credo)
            )  # fmt: skip
    return outcome(USER_READERS, findings)


def _membership_readable(snapshot: Snapshot, record: AccountRecord) -> bool:
    """Whether the caller may read msDS-GroupMSAMembership, so that its absence means "empty"."""
    if record.sd is None:
        return False
    rights = rights_by_sid(record.sd, (GMSA_MEMBERSHIP_GUID,), snapshot.token_of)
    return any(rights.get(sid, 0) & ADS_RIGHT_DS_READ_PROP for sid in snapshot.caller_sids)


def no_readers(snapshot: Snapshot, options: AuditOptions) -> CheckOutcome:
    findings = []
    unreadable = []
    for record in _gmsas(snapshot):
        if record.account.allowed_sids:
            continue
        if record.membership is None and not _membership_readable(snapshot, record):
            unreadable.append(record.name)
            continue
        name = short_name(record)
        findings.append(
            Finding(NO_READERS, record.dn, record.name, f"no principal may retrieve {record.name}'s password",
                    (account_object(record),),
                    f"Set-ADServiceAccount -Identity '{name}' -PrincipalsAllowedToRetrieveManagedPassword '<host or group>'"
                    f"  # or Remove-ADServiceAccount -Identity '{name}'",
                    f"credo account set {name} --add-allowed '<host$ or group>'  # or: credo account remove {name}")
        )  # fmt: skip
    return outcome(NO_READERS, findings, unreadable)


def membership_writers(snapshot: Snapshot, options: AuditOptions) -> CheckOutcome:
    trusted = admin_sids(snapshot)
    findings = []
    unreadable = []
    for record in _gmsas(snapshot):
        if record.sd is None:
            unreadable.append(record.name)
            continue
        rights = rights_by_sid(record.sd, (GMSA_MEMBERSHIP_GUID,), snapshot.token_of)
        dangerous = ADS_RIGHT_DS_WRITE_PROP | WRITE_DAC | WRITE_OWNER
        hits = {
            sid: mask & dangerous for sid, mask in rights.items()
            if mask & dangerous and sid not in trusted and sid != record.account.sid
        }  # fmt: skip
        if not hits:
            continue
        objects = [account_object(record)]
        for sid, mask in sorted(hits.items()):
            owner = " (owner)" if record.sd.owner == sid else ""
            objects.append(
                AffectedObject(snapshot.principals[sid].dn or sid if sid in snapshot.principals else sid,
                               snapshot.name_of(sid), "writer", describe_rights(mask) + owner)
            )  # fmt: skip
        who = ", ".join(snapshot.name_of(s) for s in sorted(hits))
        findings.append(
            Finding(TAKEOVER, record.dn, record.name, f"{who} can change who reads {record.name}'s password",
                    tuple(objects),
                    "; ".join(f"dsacls '{record.dn}' /R '{snapshot.name_of(s)}'" for s in sorted(hits)),
                    "; ".join(acl_removal(record.dn, record.sd, s) for s in sorted(hits))
                    + "  # no credo command edits ACLs")
        )  # fmt: skip
    return outcome(TAKEOVER, findings, unreadable)


def kds_readers(snapshot: Snapshot, options: AuditOptions) -> CheckOutcome:
    d = snapshot.domain_sid
    allowed = {f"{d}-512", f"{d}-519", "S-1-5-18"}
    if not snapshot.kds_keys:
        return CheckOutcome(
            KDS_READERS, CheckStatus.NOT_RUN, reason="no KDS root key is visible to " + snapshot.identity
        )
    unreadable = [k.key_id for k in snapshot.kds_keys if k.sd is None]
    if len(unreadable) == len(snapshot.kds_keys):
        return CheckOutcome(
            KDS_READERS, CheckStatus.NOT_RUN,
            reason=f"{snapshot.identity} cannot read the KDS root keys' security descriptors (run as a Domain Admin)",
        )  # fmt: skip
    findings = []
    needed = ADS_RIGHT_DS_READ_PROP | ADS_RIGHT_DS_CONTROL_ACCESS
    for key in snapshot.kds_keys:
        if key.sd is None:
            continue
        rights = rights_by_sid(key.sd, (KDS_ROOT_KEY_DATA_GUID,), snapshot.token_of)
        hits = sorted(sid for sid, mask in rights.items() if mask & needed == needed and sid not in allowed)
        if not hits:
            continue
        objects = [AffectedObject(key.dn, key.key_id, "KDS root key")] + [
            AffectedObject(snapshot.principals[s].dn or s if s in snapshot.principals else s, snapshot.name_of(s),
                           "reader", describe_rights(rights[s]))
            for s in hits
        ]  # fmt: skip
        findings.append(
            Finding(KDS_READERS, key.dn, key.key_id,
                    f"KDS root key {key.key_id} is readable by {', '.join(snapshot.name_of(s) for s in hits)}",
                    tuple(objects),
                    "; ".join(f"dsacls '{key.dn}' /R '{snapshot.name_of(s)}'" for s in hits)
                    + "  # then consider the key compromised: Add-KdsRootKey and recreate the gMSAs",
                    "; ".join(acl_removal(key.dn, key.sd, s) for s in hits)
                    + "; credo kds add --effective-immediately")
        )  # fmt: skip
    return outcome(KDS_READERS, findings, unreadable)


def kds_missing(snapshot: Snapshot, options: AuditOptions) -> CheckOutcome:
    fix_ps, fix_credo = "Add-KdsRootKey -EffectiveImmediately", "credo kds add --effective-immediately"
    if not snapshot.kds_keys:
        finding = Finding(KDS_MISSING, snapshot.base_dn, "KDS root keys",
                          f"no KDS root key is visible to {snapshot.identity}",
                          (), fix_ps, fix_credo)  # fmt: skip
        return outcome(KDS_MISSING, [finding])
    if all(k.use_start is None for k in snapshot.kds_keys):
        return CheckOutcome(
            KDS_MISSING, CheckStatus.NOT_RUN,
            reason=f"{snapshot.identity} sees {len(snapshot.kds_keys)} KDS root key(s) but cannot read when they "
            "become usable (run as a Domain Admin)",
        )  # fmt: skip
    usable = [k for k in snapshot.kds_keys if k.use_start is not None and k.use_start <= snapshot.now]
    if usable:
        return outcome(KDS_MISSING, [])
    soonest = min(k.use_start for k in snapshot.kds_keys if k.use_start is not None)
    objects = tuple(AffectedObject(k.dn, k.key_id, "KDS root key", f"usable from {k.use_start:%Y-%m-%d %H:%M} UTC")
                    for k in snapshot.kds_keys if k.use_start is not None)  # fmt: skip
    finding = Finding(KDS_MISSING, snapshot.base_dn, "KDS root keys",
                      f"no KDS root key is usable yet (the first becomes usable {soonest:%Y-%m-%d %H:%M} UTC)",
                      objects, fix_ps, fix_credo)  # fmt: skip
    return outcome(KDS_MISSING, [finding])


CHECKS: list[Check] = [
    (BROAD_READERS, broad_readers),
    (USER_READERS, user_readers),
    (NO_READERS, no_readers),
    (TAKEOVER, membership_writers),
    (KDS_READERS, kds_readers),
    (KDS_MISSING, kds_missing),
]
