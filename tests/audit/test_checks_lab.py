"""Each check against the lab DC: silent on the seeded lab, and finding the misconfiguration a test
creates as the domain administrator (and removes in a finally, so the lab stays seeded).

What the seeded lab legitimately holds and why the checks stay silent on it:
- Samba adds the gMSA's creator (the built-in Administrator, RID 500) as a password reader of
  svcauto$ and svccredo$: an account that controls the domain anyway, so password-user-readers
  does not count it (nor members of the admin groups);
- Account Operators and Administrators hold full control on every account through the class's
  default security descriptor: membership-writers treats them as admins;
- the seeded gMSAs may never have logged on: stale-account counts a never-used account only once
  it is older than --stale-days (90), and the lab is younger than that;
- the KDS root key is readable only by Domain Admins, Enterprise Admins and SYSTEM, and created
  usable at once.
"""

from __future__ import annotations

import shlex
from datetime import UTC, datetime, timedelta

import ldap
import pytest
from tests.audit.conftest import (
    extra_ace,
    membership_with,
    object_sid,
    outcome,
    read_attr,
    replaced,
    samba_tool,
    subjects,
    temporary_gmsa,
)
from tests.support.identity import run

from credo.ad.connection import Directory
from credo.audit import AuditOptions, CheckStatus, run_audit
from credo.audit.checks import CHECK_IDS
from credo.audit.snapshot import KDS_CONTAINER
from credo.lab import SEED, Lab, LabSettings

KDS_ONLY_ADMINS = ("kds-root-key-readers", "kds-root-key-missing")


def gmsa_dn(settings: LabSettings, name: str = SEED.gmsa) -> str:
    return f"CN={name},CN=Managed Service Accounts,{settings.base_dn}"


@pytest.mark.parametrize("check", CHECK_IDS)
def test_the_seeded_lab_is_clean_for_an_admin(admin_dir: Directory, check: str) -> None:
    result = outcome(admin_dir, check)
    assert result.status is CheckStatus.PASSED, [f.message for f in result.findings] or result.reason


def test_a_plain_computer_runs_the_checks_and_says_which_it_could_not(worker_dir: Directory) -> None:
    report = run_audit(worker_dir)
    statuses = {o.check.id: o for o in report.outcomes}
    for check in CHECK_IDS:
        if check in KDS_ONLY_ADMINS:
            # WORKER1$ sees the root key objects but neither their ACL nor their start time.
            assert statuses[check].status is CheckStatus.NOT_RUN, check
            assert statuses[check].reason and "Domain Admin" in statuses[check].reason
        else:
            assert statuses[check].status is CheckStatus.PASSED, (check, statuses[check].reason)
    assert report.identity.upper().endswith("WORKER1$")


def test_nested_membership_in_a_privileged_group(
    admin_dir: Directory, lab: Lab, lab_settings: LabSettings
) -> None:
    base = lab_settings.base_dn
    group_dn = f"CN=AuditNestTmp,CN=Users,{base}"
    operators = f"CN=Backup Operators,CN=Builtin,{base}"
    samba_tool(lab, "group", "add", "AuditNestTmp")
    try:
        samba_tool(lab, "group", "addmembers", "AuditNestTmp", f"{SEED.gmsa}$")
        samba_tool(lab, "group", "addmembers", "Backup Operators", "AuditNestTmp")
        # Oracle: the DC's own transitive evaluation (LDAP_MATCHING_RULE_IN_CHAIN).
        chain = admin_dir.search(base, ldap.SCOPE_SUBTREE, f"(memberOf:1.2.840.113556.1.4.1941:={operators})",
                                 ["sAMAccountName"])  # fmt: skip
        assert gmsa_dn(lab_settings).lower() in {dn.lower() for dn, _ in chain}
        result = outcome(admin_dir, "privileged-group")
        assert subjects(result) == {f"{SEED.gmsa}$"}
        (finding,) = result.findings
        groups = {o.name: o.detail for o in finding.objects if o.role == "privileged group"}
        assert groups == {"Backup Operators": f"{SEED.gmsa}$ -> AuditNestTmp -> Backup Operators"}
        assert "Remove-ADGroupMember -Identity 'AuditNestTmp'" in finding.fix_powershell
    finally:
        admin_dir.delete(group_dn)
    assert outcome(admin_dir, "privileged-group").status is CheckStatus.PASSED


def test_write_access_of_a_gmsa_to_a_privileged_group(
    admin_dir: Directory, lab: Lab, lab_settings: LabSettings
) -> None:
    target = f"CN=Backup Operators,CN=Builtin,{lab_settings.base_dn}"
    sid = object_sid(admin_dir, gmsa_dn(lab_settings))
    # WriteProperty on `member` (MS-ADA2 member schemaIDGUID): the gMSA could add anyone.
    with extra_ace(admin_dir, lab, target, f"(OA;;WP;bf9679c0-0de6-11d0-a285-00aa003049e2;;{sid})"):
        result = outcome(admin_dir, "sensitive-write")
        assert subjects(result) == {f"{SEED.gmsa}$"}
        (finding,) = result.findings
        assert [(o.name, o.kind if hasattr(o, "kind") else o.role) for o in finding.objects[1:]] == [
            ("Backup Operators", "privileged group")
        ]
        assert "WriteProperty via the account itself" in finding.objects[1].detail
    assert outcome(admin_dir, "sensitive-write").status is CheckStatus.PASSED


@pytest.mark.parametrize(
    ("check", "reader"),
    [("password-broad-readers", "authenticated users"), ("password-user-readers", "jdoe")],
)
def test_password_readable_by_unexpected_principals(
    admin_dir: Directory, lab_settings: LabSettings, check: str, reader: str
) -> None:
    dn = gmsa_dn(lab_settings)
    sid = (
        "S-1-5-11"
        if reader == "authenticated users"
        else object_sid(admin_dir, f"CN=jdoe,OU=Staff,{lab_settings.base_dn}")
    )
    original = read_attr(admin_dir, dn, "msDS-GroupMSAMembership")
    assert original is not None
    with replaced(admin_dir, dn, "msDS-GroupMSAMembership", [membership_with(original, sid)]):
        result = outcome(admin_dir, check)
        assert subjects(result) == {f"{SEED.gmsa}$"}
        (finding,) = result.findings
        assert any(o.role == "reader" and reader in o.name.lower() for o in finding.objects)
        assert finding.fix_credo.startswith(f"credo account set {SEED.gmsa} --remove-allowed")
        assert "-PrincipalsAllowedToRetrieveManagedPassword" in finding.fix_powershell
    assert outcome(admin_dir, check).status is CheckStatus.PASSED


def test_a_fresh_samba_gmsa_is_disabled_readable_weak_and_then_unreadable(
    admin_dir: Directory, lab: Lab, lab_settings: LabSettings
) -> None:
    """samba-tool creates a gMSA disabled, readable by its creator, with no enctypes: three findings."""
    with temporary_gmsa(admin_dir, lab, lab_settings, "audittmp1") as dn:
        assert subjects(outcome(admin_dir, "disabled-with-readers")) == {"audittmp1$"}
        weak = outcome(admin_dir, "weak-enctypes")
        assert subjects(weak) == {"audittmp1$"}
        assert weak.findings[0].fix_credo == "credo account set audittmp1 --enctypes AES128,AES256"
        with replaced(admin_dir, dn, "msDS-SupportedEncryptionTypes", [b"28"]):  # RC4 + AES
            assert "RC4" in outcome(admin_dir, "weak-enctypes").findings[0].message
        # An empty DACL: nobody may retrieve the password.
        empty = membership_with(read_attr(admin_dir, dn, "msDS-GroupMSAMembership") or b"")
        from credo.ad.security import SecurityDescriptor

        sd = SecurityDescriptor.unpack(empty)
        nobody = SecurityDescriptor(sd.owner, sd.group, (), sd.control, sd.acl_revision).pack()
        with replaced(admin_dir, dn, "msDS-GroupMSAMembership", [nobody]):
            assert subjects(outcome(admin_dir, "password-no-readers")) == {"audittmp1$"}
            assert outcome(admin_dir, "disabled-with-readers").status is CheckStatus.PASSED
    for check in ("disabled-with-readers", "weak-enctypes", "password-no-readers"):
        assert outcome(admin_dir, check).status is CheckStatus.PASSED


def test_non_admin_writer_of_the_reader_list(
    admin_dir: Directory, worker_dir: Directory, lab: Lab, lab_settings: LabSettings
) -> None:
    dn = gmsa_dn(lab_settings)
    jdoe = object_sid(admin_dir, f"CN=jdoe,OU=Staff,{lab_settings.base_dn}")
    with extra_ace(admin_dir, lab, dn, f"(OA;;WP;888eedd6-ce04-df40-b462-b8a50e41ba38;;{jdoe})"):
        # A plain computer sees it too: the account's DACL is readable by Authenticated Users.
        for directory in (admin_dir, worker_dir):
            result = outcome(directory, "membership-writers")
            assert subjects(result) == {f"{SEED.gmsa}$"}
            writers = [o for o in result.findings[0].objects if o.role == "writer"]
            assert [(w.name.split("\\")[-1], w.detail) for w in writers] == [("jdoe", "WriteProperty")]
    with extra_ace(admin_dir, lab, dn, f"(A;;WD;;;{jdoe})"):
        writers = [
            o for o in outcome(admin_dir, "membership-writers").findings[0].objects if o.role == "writer"
        ]
        assert writers[0].detail == "WriteDacl"
    assert outcome(admin_dir, "membership-writers").status is CheckStatus.PASSED


def test_the_suggested_acl_fix_removes_exactly_the_risky_ace(
    admin_dir: Directory, lab: Lab, lab_settings: LabSettings
) -> None:
    """The samba-tool fix names the ACE in SDDL exactly: run as given, the finding is gone."""
    dn = gmsa_dn(lab_settings)
    jdoe = object_sid(admin_dir, f"CN=jdoe,OU=Staff,{lab_settings.base_dn}")
    with extra_ace(admin_dir, lab, dn, f"(OA;CI;WP;888eedd6-ce04-df40-b462-b8a50e41ba38;;{jdoe})"):
        fix = outcome(admin_dir, "membership-writers").findings[0].fix_credo
        commands = [c.strip() for c in fix.split("#")[0].split("; ") if c.strip().startswith("samba-tool")]
        assert commands == [
            f"samba-tool dsacl delete --objectdn='{dn}' "
            f"--sddl='(OA;CI;WP;888eedd6-ce04-df40-b462-b8a50e41ba38;;{jdoe})'"
        ]
        argv = shlex.split(commands[0])[1:]
        samba_tool(lab, *argv)
        assert outcome(admin_dir, "membership-writers").status is CheckStatus.PASSED


def test_kds_root_key_readable_by_a_user(admin_dir: Directory, lab: Lab, lab_settings: LabSettings) -> None:
    container = f"{KDS_CONTAINER},{admin_dir.configuration_dn}"
    keys = admin_dir.search(container, ldap.SCOPE_ONELEVEL, "(objectClass=msKds-ProvRootKey)", ["cn"])
    key_dn = keys[0][0]
    jdoe = object_sid(admin_dir, f"CN=jdoe,OU=Staff,{lab_settings.base_dn}")
    # ReadProperty + ControlAccess on msKds-RootKeyData (confidential: MS-ADTS 3.1.1.4.3).
    with extra_ace(admin_dir, lab, key_dn, f"(OA;;RPCR;26627c27-08a2-0a40-a1b1-8dce85b42993;;{jdoe})"):
        result = outcome(admin_dir, "kds-root-key-readers")
        assert result.status is CheckStatus.FAILED
        assert any(f.subject == key_dn for f in result.findings)
        assert "credo kds add --effective-immediately" in result.findings[0].fix_credo
    # ReadProperty alone does not reveal a confidential attribute.
    with extra_ace(admin_dir, lab, key_dn, f"(OA;;RP;26627c27-08a2-0a40-a1b1-8dce85b42993;;{jdoe})"):
        assert outcome(admin_dir, "kds-root-key-readers").status is CheckStatus.PASSED
    assert outcome(admin_dir, "kds-root-key-readers").status is CheckStatus.PASSED


def test_no_kds_root_key_usable_yet(admin_dir: Directory) -> None:
    """The lab's only key must stay usable for the other tests, so the audit is run as of a time
    before the key's start: the same state as right after Add-KdsRootKey without -EffectiveImmediately."""
    container = f"{KDS_CONTAINER},{admin_dir.configuration_dn}"
    starts = admin_dir.search(
        container, ldap.SCOPE_ONELEVEL, "(objectClass=msKds-ProvRootKey)", ["msKds-UseStartTime"]
    )
    first = min(int(attrs["msKds-UseStartTime"][0]) for _dn, attrs in starts)
    start = datetime(1601, 1, 1, tzinfo=UTC) + timedelta(microseconds=first // 10)
    result = outcome(admin_dir, "kds-root-key-missing", now=start - timedelta(hours=1))
    assert result.status is CheckStatus.FAILED
    assert "no KDS root key is usable yet" in result.findings[0].message
    assert result.findings[0].fix_powershell == "Add-KdsRootKey -EffectiveImmediately"


def test_gmsa_outside_the_msa_container(admin_dir: Directory, lab: Lab, lab_settings: LabSettings) -> None:
    with temporary_gmsa(admin_dir, lab, lab_settings, "audittmp2") as dn:
        moved = f"CN=audittmp2,OU={SEED.staff_ou},{lab_settings.base_dn}"
        # samba-tool user move does not find gMSAs; ldbrename on the DC's database moves any object.
        run(["ldbrename", "-H", lab.paths.sam_ldb, dn, moved], check=True)
        result = outcome(admin_dir, "outside-msa-container")
        assert subjects(result) == {"audittmp2$"}
        assert f"OU={SEED.staff_ou}" in result.findings[0].message
    assert outcome(admin_dir, "outside-msa-container").status is CheckStatus.PASSED


@pytest.mark.parametrize(
    ("check", "uac_bit"), [("unconstrained-delegation", 0x80000), ("protocol-transition", 0x1000000)]
)
def test_delegation(
    admin_dir: Directory, lab: Lab, lab_settings: LabSettings, check: str, uac_bit: int
) -> None:
    with temporary_gmsa(admin_dir, lab, lab_settings, "audittmp3") as dn:
        uac = int(read_attr(admin_dir, dn, "userAccountControl") or b"0")
        changes = [(ldap.MOD_REPLACE, "userAccountControl", [str(uac | uac_bit).encode()])]
        if check == "protocol-transition":
            changes.append(
                (
                    ldap.MOD_REPLACE,
                    "msDS-AllowedToDelegateTo",
                    [f"cifs/dc1.{lab_settings.dns_domain}".encode()],
                )
            )
        admin_dir.modify(dn, changes)  # type: ignore[arg-type]
        result = outcome(admin_dir, check)
        assert subjects(result) == {"audittmp3$"}
        if check == "protocol-transition":
            assert "cifs/dc1." in result.findings[0].message
        else:
            assert "-TrustedForDelegation $false" in result.findings[0].fix_powershell
    assert outcome(admin_dir, check).status is CheckStatus.PASSED


def test_stale_accounts(admin_dir: Directory, lab: Lab, lab_settings: LabSettings) -> None:
    with temporary_gmsa(admin_dir, lab, lab_settings, "audittmp4") as dn:
        # Never logged on and created just now: not stale.
        assert "audittmp4$" not in subjects(outcome(admin_dir, "stale-account"))
        # A last logon 200 days ago (lastLogonTimestamp is a FILETIME, MS-ADA1 2.351).
        old = datetime.now(UTC) - timedelta(days=200)
        filetime = int((old - datetime(1601, 1, 1, tzinfo=UTC)).total_seconds() * 10_000_000)
        with replaced(admin_dir, dn, "lastLogonTimestamp", [str(filetime).encode()]):
            result = outcome(admin_dir, "stale-account")
            assert subjects(result) == {"audittmp4$"}
            assert "last logon" in result.findings[0].message
            assert "audittmp4$" not in subjects(
                outcome(admin_dir, "stale-account", options=AuditOptions(stale_days=365))
            )
    assert outcome(admin_dir, "stale-account").status is CheckStatus.PASSED


def test_standalone_msa_linked_to_no_computer(admin_dir: Directory, lab_settings: LabSettings) -> None:
    dn = f"CN=auditsmsa,CN=Managed Service Accounts,{lab_settings.base_dn}"
    admin_dir.add(dn, {
        "objectClass": [b"msDS-ManagedServiceAccount"],
        "sAMAccountName": [b"auditsmsa$"],
        "userAccountControl": [b"4096"],
    })  # fmt: skip
    try:
        result = outcome(admin_dir, "smsa-unlinked")
        assert subjects(result) == {"auditsmsa$"}
        assert result.findings[0].fix_credo.startswith("credo account link auditsmsa --computer")
        computer = f"CN={SEED.computers[0].upper()},CN=Computers,{lab_settings.base_dn}"
        with replaced(admin_dir, computer, "msDS-HostServiceAccount", [dn.encode()]):
            assert outcome(admin_dir, "smsa-unlinked").status is CheckStatus.PASSED
    finally:
        admin_dir.delete(dn)


def test_check_ids_are_unique() -> None:
    assert len(set(CHECK_IDS)) == len(CHECK_IDS) == 15
