"""Pure logic of the user-service-accounts check: which user accounts it reports, at which severity,
and what it says; snapshots built in memory (the lab tests read the real ones)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from credo.audit.checks import CHECK_IDS, AuditOptions
from credo.audit.checks.user_accounts import (
    USER_SERVICE_ACCOUNTS,
    classify,
    looks_like_service,
    user_service_accounts,
)
from credo.audit.findings import CheckStatus, Severity
from credo.audit.snapshot import GroupRecord, Snapshot, UserServiceRecord

DOMAIN = "S-1-5-21-1-2-3"
BASE = "DC=corp,DC=example,DC=test"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
NORMAL, DISABLED, DONT_EXPIRE = 0x200, 0x2, 0x10000
AES = 0x18
USERS_GROUP = f"CN=Domain Users,CN=Users,{BASE}"
OPS_GROUP = f"CN=Ops,CN=Users,{BASE}"
BACKUP_OPERATORS = f"CN=Backup Operators,CN=Builtin,{BASE}"


def snapshot(*users: UserServiceRecord) -> Snapshot:
    groups = {
        USERS_GROUP.lower(): GroupRecord(USERS_GROUP, f"{DOMAIN}-513", "Domain Users", ()),
        # Ops is a member of Backup Operators: its members are privileged through nesting.
        OPS_GROUP.lower(): GroupRecord(OPS_GROUP, f"{DOMAIN}-1200", "Ops", (BACKUP_OPERATORS,)),
        BACKUP_OPERATORS.lower(): GroupRecord(BACKUP_OPERATORS, "S-1-5-32-551", "Backup Operators", ()),
    }
    return Snapshot(base_dn=BASE, domain_sid=DOMAIN, netbios="CORP", identity="CORP\\someone",
                    caller_sids=frozenset(), accounts=[], groups=groups, sensitive=[], kds_keys=[],
                    kds_keys_readable=False, now=NOW, users=list(users))  # fmt: skip


def user(
    name: str = "svc_app",
    *,
    rid: int = 1500,
    spns: tuple[str, ...] = (),
    uac: int = NORMAL,
    age_days: int | None = 30,
    enctypes: int | None = None,
    member_of: tuple[str, ...] = (),
    admin_count: bool = False,
    description: str = "",
) -> UserServiceRecord:
    return UserServiceRecord(
        dn=f"CN={name},CN=Users,{BASE}",
        name=name,
        sid=f"{DOMAIN}-{rid}",
        spns=spns,
        uac=uac,
        pwd_last_set=NOW - timedelta(days=age_days) if age_days is not None else None,
        enctypes=enctypes,
        member_of=member_of,
        primary_group_sid=f"{DOMAIN}-513",
        admin_count=admin_count,
        description=description,
    )


SPN = ("HTTP/app.corp.example.test",)


def level(record: UserServiceRecord) -> Severity | None:
    found = classify(snapshot(record), record)
    return found.level if found else None


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        # SPN, no msDS-SupportedEncryptionTypes: the KDC's default, RC4.
        (user(spns=SPN), Severity.CRITICAL),
        (user(spns=SPN, enctypes=0), Severity.CRITICAL),
        (user(spns=SPN, enctypes=0x4), Severity.CRITICAL),  # RC4 only, spelled out
        (user(spns=SPN, enctypes=0x3), Severity.CRITICAL),  # DES only
        # AES allowed, but privileged: adminCount, or nested membership of a privileged group.
        (user(spns=SPN, enctypes=AES, admin_count=True), Severity.CRITICAL),
        (user(spns=SPN, enctypes=AES, member_of=(OPS_GROUP,)), Severity.CRITICAL),
        # AES, not privileged: high when the password never expires or is over a year old.
        (user(spns=SPN, enctypes=AES, uac=NORMAL | DONT_EXPIRE), Severity.HIGH),
        (user(spns=SPN, enctypes=AES, age_days=400), Severity.HIGH),
        (user(spns=SPN, enctypes=0x1C, age_days=366), Severity.HIGH),  # RC4 + AES: AES tickets
        (user(spns=SPN, enctypes=AES, age_days=365), Severity.MEDIUM),
        (user(spns=SPN, enctypes=AES), Severity.MEDIUM),
        (user("jdoe", spns=SPN, enctypes=AES), Severity.MEDIUM),  # any name: the SPN decides
        # No SPN: never-expiring and service-looking is low; either alone is nothing.
        (user(uac=NORMAL | DONT_EXPIRE), Severity.LOW),
        (user("jdoe", uac=NORMAL | DONT_EXPIRE, description="Payroll service account"), Severity.LOW),
        (user("jdoe", uac=NORMAL | DONT_EXPIRE), None),
        (user("svc_app"), None),
    ],
)
def test_severity_rules(record: UserServiceRecord, expected: Severity | None) -> None:
    assert level(record) == expected


@pytest.mark.parametrize(
    ("rid", "name", "uac"),
    [
        (500, "Administrator", NORMAL | DONT_EXPIRE),  # the built-in Administrator
        (501, "Guest", NORMAL | DONT_EXPIRE),  # Guest (enabled here, to prove the RID decides)
        (502, "krbtgt", NORMAL),  # krbtgt holds kadmin/changepw; here enabled, to prove the RID decides
        (1500, "svc_off", NORMAL | DISABLED | DONT_EXPIRE),  # disabled
        (1501, "TRUST$", 0x800 | DONT_EXPIRE),  # a trust's account
    ],
)
def test_built_in_disabled_and_trust_accounts_are_skipped(rid: int, name: str, uac: int) -> None:
    record = user(name, rid=rid, spns=("kadmin/changepw",), uac=uac)
    assert classify(snapshot(record), record) is None


@pytest.mark.parametrize(
    ("name", "service"),
    [
        ("svc_legacy", True),
        ("svclegacy", True),
        ("backupsvc", True),
        ("web-srv", True),
        ("sa_reports", True),
        ("reports_sa", True),
        ("app-web", True),
        ("sql.reporting", True),
        ("nightly_batch", True),
        ("task-runner", True),
        ("ServiceDesk", True),
        ("jdoe", False),
        ("appleton", False),  # "app" glued to a surname is no service word
        ("sasha", False),
        ("taskin", False),
        ("mysqlfan", False),
    ],
)
def test_name_heuristic(name: str, service: bool) -> None:
    assert looks_like_service(user(name)) is service


def test_description_heuristic() -> None:
    assert looks_like_service(user("jdoe", description="Runs the backup SERVICE"))
    assert not looks_like_service(user("jdoe", description="Accounting"))


def test_finding_says_why_and_how_to_fix() -> None:
    legacy = user("svc_legacy", spns=("HTTP/legacy.corp.example.test",), uac=NORMAL | DONT_EXPIRE, age_days=3)
    clean = user("jdoe", rid=1101)  # in the snapshot (say, a never-expiring password), not reported
    result = user_service_accounts(snapshot(legacy, clean), AuditOptions())
    assert result.status is CheckStatus.FAILED
    (finding,) = result.findings
    assert finding.severity is Severity.CRITICAL and finding.check is USER_SERVICE_ACCOUNTS
    assert finding.message == (
        "svc_legacy has SPN HTTP/legacy.corp.example.test, only RC4 keys and a password that never "
        "expires: its tickets can be cracked offline"
    )
    (obj,) = finding.objects
    assert (obj.name, obj.role) == ("svc_legacy", "user account")
    assert "SPNs: HTTP/legacy.corp.example.test" in obj.detail
    assert "password age: 3 days (never expires)" in obj.detail
    assert "enctypes: not set (KDC default: RC4)" in obj.detail
    assert finding.fix_powershell.startswith(
        "New-ADServiceAccount -Name 'gmsa-legacy' -DNSHostName 'gmsa-legacy.corp.example.test' "
        "-PrincipalsAllowedToRetrieveManagedPassword '<hosts>' -KerberosEncryptionType AES256; "
        "Set-ADUser -Identity 'svc_legacy' -ServicePrincipalNames @{Remove='HTTP/legacy.corp.example.test'}; "
        "Set-ADServiceAccount -Identity 'gmsa-legacy' -ServicePrincipalNames @{Add='HTTP/legacy.corp.example.test'}"
    )
    assert "\n" not in finding.fix_powershell
    assert finding.fix_credo == "credo migrate plan svc_legacy --hosts '<host1,host2>'"


def test_privileged_finding_names_the_group_and_the_path() -> None:
    record = user("svc_backup", spns=SPN, enctypes=AES, member_of=(OPS_GROUP,))
    (finding,) = user_service_accounts(snapshot(record), AuditOptions()).findings
    assert finding.severity is Severity.CRITICAL
    assert "privileges (Backup Operators)" in finding.message
    assert "privileged: Backup Operators (svc_backup -> Ops -> Backup Operators)" in finding.objects[0].detail


def test_each_spn_is_moved_and_findings_keep_their_own_level() -> None:
    two = user("svc_two", spns=("HTTP/a.corp.example.test", "HTTP/b.corp.example.test"), enctypes=AES)
    low = user("svc_low", rid=1600, uac=NORMAL | DONT_EXPIRE)
    result = user_service_accounts(snapshot(two, low), AuditOptions())
    levels = {f.subject_name: f.severity for f in result.findings}
    assert levels == {"svc_two": Severity.MEDIUM, "svc_low": Severity.LOW}
    moved = next(f for f in result.findings if f.subject_name == "svc_two").fix_powershell
    assert moved.count("@{Remove=") == 2 and moved.count("@{Add=") == 2
    assert "(and 1 more)" in next(f for f in result.findings if f.subject_name == "svc_two").message


def test_nothing_to_report_passes_and_the_check_is_registered() -> None:
    assert user_service_accounts(snapshot(), AuditOptions()).status is CheckStatus.PASSED
    assert USER_SERVICE_ACCOUNTS.severity is Severity.CRITICAL
    assert CHECK_IDS.index("user-service-accounts") == CHECK_IDS.index("kds-root-key-missing") + 1
