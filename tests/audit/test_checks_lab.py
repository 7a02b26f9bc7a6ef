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

One check does find the seeded lab: password-reads-unaudited. A new domain has no audit ACE for
reads of msDS-ManagedPassword or msKds-RootKeyData; that is its seeded case, and the test adds
the ACEs with `credo account set --audit-reads` and `credo kds audit-reads`.

user-service-accounts finds the seeded lab too: svc_legacy, the legacy user service account the
lab seeds for `credo migrate` (an SPN, no msDS-SupportedEncryptionTypes so RC4 only, a password
that never expires) is its seeded case, found as critical by an admin and a plain computer alike.
"""

from __future__ import annotations

import json
import os
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ldap
import pytest
from tests.audit.conftest import (
    extra_ace,
    membership_with,
    object_sid,
    outcome,
    read_attr,
    replaced,
    replaced_as_system,
    samba_tool,
    subjects,
    temporary_gmsa,
)
from tests.support.identity import CREDO, run

from credo.ad.connection import SD_FLAGS_SACL, Directory
from credo.ad.security import ACCESS_ALLOWED_ACE_TYPE, FULL_CONTROL, Ace, SecurityDescriptor, to_sddl
from credo.audit import AuditOptions, CheckStatus, Severity, run_audit
from credo.audit.checks import CHECK_IDS
from credo.audit.snapshot import KDS_CONTAINER
from credo.lab import MIGRATION_SEED, SEED, Lab, LabSettings

# Checks that need a Domain Admin's rights (the KDS root keys' ACL and times; SACLs).
KDS_ONLY_ADMINS = ("kds-root-key-readers", "kds-root-key-missing", "password-reads-unaudited")
UNAUDITED_IN_A_NEW_DOMAIN = "password-reads-unaudited"
LEGACY_USER_SERVICE = "user-service-accounts"  # finds the seeded svc_legacy
# Checks whose seeded case is in the lab: each has a test of its own below.
SEEDED_FINDINGS = (UNAUDITED_IN_A_NEW_DOMAIN, LEGACY_USER_SERVICE)


def gmsa_dn(settings: LabSettings, name: str = SEED.gmsa) -> str:
    return f"CN={name},CN=Managed Service Accounts,{settings.base_dn}"


@pytest.mark.parametrize("check", [c for c in CHECK_IDS if c not in SEEDED_FINDINGS])
def test_the_seeded_lab_is_clean_for_an_admin(admin_dir: Directory, check: str) -> None:
    result = outcome(admin_dir, check)
    assert result.status is CheckStatus.PASSED, [f.message for f in result.findings] or result.reason


def test_a_plain_computer_runs_the_checks_and_says_which_it_could_not(worker_dir: Directory) -> None:
    report = run_audit(worker_dir)
    statuses = {o.check.id: o for o in report.outcomes}
    for check in CHECK_IDS:
        if check in KDS_ONLY_ADMINS:
            # WORKER1$ sees the root key objects but neither their ACL nor their start time, and
            # no SACL at all.
            assert statuses[check].status is CheckStatus.NOT_RUN, check
            assert statuses[check].reason and "Domain Admin" in statuses[check].reason
        elif check == LEGACY_USER_SERVICE:
            # Authenticated Users may read a user's SPNs, userAccountControl and enctypes.
            assert subjects(statuses[check]) == {MIGRATION_SEED.user}, statuses[check].findings
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


def test_a_deny_through_a_group_takes_the_write_away(
    admin_dir: Directory, lab: Lab, lab_settings: LabSettings
) -> None:
    """jdoe may write the reader list, but a group jdoe is in is denied it: the DC refuses jdoe
    the write, so the audit must not report it (MS-DTYP 2.5.3.2; a deny through a group)."""
    dn = gmsa_dn(lab_settings)
    jdoe_dn = f"CN=jdoe,OU=Staff,{lab_settings.base_dn}"
    jdoe = object_sid(admin_dir, jdoe_dn)
    group = "credo-test-deny-writers"
    samba_tool(lab, "group", "add", group)
    try:
        group_sid = object_sid(admin_dir, f"CN={group},CN=Users,{lab_settings.base_dn}")
        allow = f"(OA;;WP;888eedd6-ce04-df40-b462-b8a50e41ba38;;{jdoe})"
        deny = f"(OD;;WP;888eedd6-ce04-df40-b462-b8a50e41ba38;;{group_sid})"
        with extra_ace(admin_dir, lab, dn, allow), extra_ace(admin_dir, lab, dn, deny):
            assert subjects(outcome(admin_dir, "membership-writers")) == {f"{SEED.gmsa}$"}  # not a member yet
            samba_tool(lab, "group", "addmembers", group, "jdoe")
            assert outcome(admin_dir, "membership-writers").status is CheckStatus.PASSED
    finally:
        samba_tool(lab, "group", "delete", group)


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
    assert len(set(CHECK_IDS)) == len(CHECK_IDS) == 18


def test_reads_of_passwords_and_root_keys_are_unaudited_until_credo_adds_the_ace(
    admin_dir: Directory, lab: Lab, lab_settings: LabSettings, as_identity: Any
) -> None:
    """The seeded lab has no audit ACE for reads of the gMSAs' passwords or the root key's data;
    `credo account set NAME --audit-reads` and `credo kds audit-reads` add exactly the SDDL the
    finding names, after which the check accepts them (and a second run adds nothing)."""
    container = f"{KDS_CONTAINER},{admin_dir.configuration_dn}"
    key_dns = [
        dn
        for dn, _ in admin_dir.search(
            container, ldap.SCOPE_ONELEVEL, "(objectClass=msKds-ProvRootKey)", ["cn"]
        )
    ]
    gmsas = [gmsa_dn(lab_settings), gmsa_dn(lab_settings, SEED.server_gmsa)]
    before = {
        dn: read_attr(admin_dir, dn, "nTSecurityDescriptor", SD_FLAGS_SACL) for dn in [*gmsas, *key_dns]
    }
    try:
        result = outcome(admin_dir, UNAUDITED_IN_A_NEW_DOMAIN)
        assert result.status is CheckStatus.FAILED
        found = {f.subject.lower(): f for f in result.findings}
        assert {dn.lower() for dn in [*gmsas, *key_dns]} <= set(found)
        finding = found[gmsas[0].lower()]
        assert finding.fix_credo == f"credo account set {SEED.gmsa} --audit-reads"
        assert "(OU;SA;RP;e362ed86-b728-0842-b27d-2dea7a9df218;;WD)" in finding.objects[0].detail
        admin = as_identity("admin")
        for name in (SEED.gmsa, SEED.server_gmsa):
            proc = run([*CREDO, "account", "set", name, "--audit-reads"], env=admin)
            assert proc.returncode == 0, proc.stderr
        proc = run([*CREDO, "kds", "audit-reads", "--json"], env=admin)
        assert proc.returncode == 0, proc.stderr
        assert all(k["added"] for k in json.loads(proc.stdout))
        again = run([*CREDO, "kds", "audit-reads", "--json"], env=admin)
        assert not any(k["added"] for k in json.loads(again.stdout))
        sacl = SecurityDescriptor.unpack(
            read_attr(admin_dir, gmsas[0], "nTSecurityDescriptor", SD_FLAGS_SACL) or b""
        )
        assert "(OU;SA;RP;e362ed86-b728-0842-b27d-2dea7a9df218;;WD)" in to_sddl(sacl)
        after = outcome(admin_dir, UNAUDITED_IN_A_NEW_DOMAIN)
        remaining = {f.subject.lower() for f in after.findings}
        assert not remaining & {dn.lower() for dn in [*gmsas, *key_dns]}, [f.message for f in after.findings]
    finally:
        for dn, raw in before.items():
            if raw is not None:
                admin_dir.modify(
                    dn, [(ldap.MOD_REPLACE, "nTSecurityDescriptor", [raw])], sd_flags=SD_FLAGS_SACL
                )


def test_without_security_privilege_the_sacl_is_refused_with_a_hint(as_identity: Any) -> None:
    """A plain computer account asks to add the audit ACE: a one-line refusal that says why."""
    proc = run([*CREDO, "account", "set", SEED.gmsa, "--audit-reads"], env=as_identity("worker1"))
    assert proc.returncode == 5 and "Traceback" not in proc.stderr, proc.stderr
    assert "cannot read the SACL" in proc.stderr and "SeSecurityPrivilege" in proc.stderr, proc.stderr


RBCD_ATTRIBUTE = "msDS-AllowedToActOnBehalfOfOtherIdentity"


def rbcd_descriptor(*sids: str) -> bytes:
    """The attribute as Set-ADComputer -PrincipalsAllowedToDelegateToAccount writes it: owner
    Administrators, no group, one full-control (0xF01FF) allow ACE per delegating principal."""
    aces = tuple(Ace(ACCESS_ALLOWED_ACE_TYPE, 0, FULL_CONTROL, sid) for sid in sids)
    return SecurityDescriptor(owner="S-1-5-32-544", group=None, dacl=aces).pack()


def domain_controller(directory: Directory, settings: LabSettings) -> tuple[str, str]:
    """(DN, sAMAccountName) of DC1, the DC the tests write to and read from: of the computers with
    SERVER_TRUST_ACCOUNT (0x2000), the one with its host name (the lab may run a second DC)."""
    (dc,) = directory.search(
        settings.base_dn, ldap.SCOPE_SUBTREE,
        f"(&(objectClass=computer)(userAccountControl:1.2.840.113556.1.4.803:=8192)(dNSHostName={settings.dc_fqdn}))",
        ["sAMAccountName"],
    )  # fmt: skip
    return dc[0], dc[1]["sAMAccountName"][0].decode()


def test_rbcd_set_on_a_gmsa(
    admin_dir: Directory, worker_dir: Directory, lab: Lab, lab_settings: LabSettings
) -> None:
    """WORKER2$ may act on behalf of any user to svcauto$'s services: high, for the admin and for
    a plain computer alike (Authenticated Users may read the attribute)."""
    dn = gmsa_dn(lab_settings)
    worker2 = object_sid(admin_dir, f"CN=WORKER2,CN=Computers,{lab_settings.base_dn}")
    with replaced_as_system(lab, admin_dir, dn, RBCD_ATTRIBUTE, rbcd_descriptor(worker2)):
        for directory in (admin_dir, worker_dir):
            result = outcome(directory, "rbcd")
            assert subjects(result) == {f"{SEED.gmsa}$"}
            (finding,) = result.findings
            assert finding.severity is Severity.HIGH
            delegating = [o.name.split("\\")[-1] for o in finding.objects if o.role == "delegating principal"]
            assert delegating == ["WORKER2$"]
            assert finding.fix_powershell == (
                f"Set-ADServiceAccount -Identity '{SEED.gmsa}' -PrincipalsAllowedToDelegateToAccount $null"
            )
            assert finding.fix_credo.startswith(
                f"samba-tool delegation del-principal '{SEED.gmsa}$' 'WORKER2$'"
            )
    assert outcome(admin_dir, "rbcd").status is CheckStatus.PASSED


def test_rbcd_on_a_domain_controller_naming_a_gmsa(
    admin_dir: Directory, worker_dir: Directory, lab: Lab, lab_settings: LabSettings
) -> None:
    """The DC lets svcauto$ (and WORKER2$) act on behalf of any user: whoever retrieves svcauto$'s
    password can impersonate a domain admin to the DC. The samba-tool fix, run as given, takes
    svcauto$ out and leaves WORKER2$ (which is no managed service account: not this check's)."""
    dc_dn, dc_name = domain_controller(admin_dir, lab_settings)
    svcauto = object_sid(admin_dir, gmsa_dn(lab_settings))
    worker2 = object_sid(admin_dir, f"CN=WORKER2,CN=Computers,{lab_settings.base_dn}")
    with replaced_as_system(lab, admin_dir, dc_dn, RBCD_ATTRIBUTE, rbcd_descriptor(svcauto, worker2)):
        for directory in (admin_dir, worker_dir):
            result = outcome(directory, "rbcd")
            assert subjects(result) == {dc_name}
            (finding,) = result.findings
            assert finding.severity is Severity.CRITICAL
            assert finding.subject.lower() == dc_dn.lower()
            host, *accounts = finding.objects
            assert (host.name, host.role) == (dc_name, "domain controller")
            assert [(a.name, a.role) for a in accounts] == [(f"{SEED.gmsa}$", "gMSA")]
            assert accounts[0].detail.startswith("named directly; password readers: ")
            assert f"{SEED.gmsa}$" in finding.message
            assert finding.fix_powershell == (
                f"Set-ADComputer -Identity '{dc_name.rstrip('$')}' -PrincipalsAllowedToDelegateToAccount 'WORKER2$'"
            )
        command = finding.fix_credo.split("  #")[0]
        assert command == f"samba-tool delegation del-principal '{dc_name}' '{SEED.gmsa}$'"
        samba_tool(lab, *shlex.split(command)[1:])
        left = SecurityDescriptor.unpack(read_attr(admin_dir, dc_dn, RBCD_ATTRIBUTE) or b"")
        assert left.allowed_sids == [worker2]
        assert outcome(admin_dir, "rbcd").status is CheckStatus.PASSED
    assert read_attr(admin_dir, dc_dn, RBCD_ATTRIBUTE) is None
    assert outcome(admin_dir, "rbcd").status is CheckStatus.PASSED


def user_dn(settings: LabSettings, name: str) -> str:
    """CN=Users for svc_legacy (the seed puts it there), OU=Staff for the people."""
    where = "CN=Users" if name == MIGRATION_SEED.user else f"OU={SEED.staff_ou}"
    return f"CN={name},{where},{settings.base_dn}"


def ticket_enctype(lab: Lab, settings: LabSettings, ccache_dir: Path, spn: str) -> str:
    """The oracle: the enctype the KDC itself encrypts a service ticket for ``spn`` with (klist -e
    "Etype (skey, tkt)"), asked as WORKER1$, any authenticated principal, in a fresh ccache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KRB5", "CREDO_", "LDAP"))}
    env |= {"KRB5_CONFIG": str(lab.paths.krb5_conf), "KRB5CCNAME": f"FILE:{ccache_dir / 'tgs.ccache'}"}
    keytab = lab.paths.host_keytab("worker1")
    run(["kinit", "-k", "-t", keytab, f"WORKER1$@{settings.realm}"], env, check=True)
    run(["kvno", spn], env, check=True)
    lines = run(["klist", "-e"], env, check=True).stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if spn in line)
    return lines[at + 1].split("Etype (skey, tkt):", 1)[1].split(",")[1].strip()


def test_the_seeded_legacy_user_service_account_is_critical(
    admin_dir: Directory, lab: Lab, lab_settings: LabSettings, tmp_path: Path
) -> None:
    """svc_legacy has an SPN and no msDS-SupportedEncryptionTypes: the KDC encrypts its tickets
    with RC4, which any authenticated user may request and crack offline."""
    spn = MIGRATION_SEED.spn(lab_settings.dns_domain)
    assert ticket_enctype(lab, lab_settings, tmp_path, spn).endswith("arcfour-hmac")  # the DC agrees
    result = outcome(admin_dir, LEGACY_USER_SERVICE)
    assert subjects(result) == {MIGRATION_SEED.user}
    (finding,) = result.findings
    assert finding.severity is Severity.CRITICAL
    assert finding.message.startswith(f"{MIGRATION_SEED.user} has SPN {spn}, only RC4 keys")
    (obj,) = finding.objects
    assert obj.role == "user account"
    assert obj.dn.lower() == user_dn(lab_settings, MIGRATION_SEED.user).lower()
    assert f"SPNs: {spn}" in obj.detail and "(never expires)" in obj.detail
    assert "enctypes: not set (KDC default: RC4)" in obj.detail
    assert f"Set-ADUser -Identity '{MIGRATION_SEED.user}' -ServicePrincipalNames @{{Remove='{spn}'}}" in (
        finding.fix_powershell
    )
    assert finding.fix_credo == f"credo migrate plan {MIGRATION_SEED.user} --hosts '<host1,host2>'"


def test_aes_keys_take_the_legacy_account_down_to_high(
    admin_dir: Directory, lab: Lab, lab_settings: LabSettings, tmp_path: Path
) -> None:
    """AES128 | AES256 (24): the tickets are AES-encrypted; the never-expiring password stays high."""
    dn = user_dn(lab_settings, MIGRATION_SEED.user)
    with replaced(admin_dir, dn, "msDS-SupportedEncryptionTypes", [b"24"]):
        spn = MIGRATION_SEED.spn(lab_settings.dns_domain)
        assert ticket_enctype(lab, lab_settings, tmp_path, spn) == "aes256-cts-hmac-sha1-96"
        (finding,) = outcome(admin_dir, LEGACY_USER_SERVICE).findings
        assert finding.severity is Severity.HIGH
        assert "RC4" not in finding.message
        assert "a password that never expires" in finding.message
        assert "enctypes: AES128,AES256" in finding.objects[0].detail
    (finding,) = outcome(admin_dir, LEGACY_USER_SERVICE).findings
    assert finding.severity is Severity.CRITICAL


def test_a_person_with_an_spn_is_reported_and_critical_once_privileged(
    admin_dir: Directory, lab: Lab, lab_settings: LabSettings
) -> None:
    """A clean user (jdoe; and a new one: no SPN, a password that expires) is not reported; given
    an SPN and AES keys, medium; nested in Backup Operators through a group, critical. A user of
    its own, not jdoe, whom other tests log in as."""
    user, group = "auditroast1", "AuditRoastTmp"
    dn = f"CN={user},CN=Users,{lab_settings.base_dn}"
    samba_tool(lab, "user", "add", user, "--random-password")
    try:
        found = subjects(outcome(admin_dir, LEGACY_USER_SERVICE))
        assert "jdoe" not in found and user not in found
        spn = f"HTTP/{user}.{lab_settings.dns_domain}".encode()
        admin_dir.modify(dn, [(ldap.MOD_REPLACE, "servicePrincipalName", [spn]),
                              (ldap.MOD_REPLACE, "msDS-SupportedEncryptionTypes", [b"24"])])  # fmt: skip
        findings = {f.subject_name: f for f in outcome(admin_dir, LEGACY_USER_SERVICE).findings}
        assert findings[user].severity is Severity.MEDIUM
        samba_tool(lab, "group", "add", group)
        try:
            samba_tool(lab, "group", "addmembers", group, user)
            samba_tool(lab, "group", "addmembers", "Backup Operators", group)
            findings = {f.subject_name: f for f in outcome(admin_dir, LEGACY_USER_SERVICE).findings}
            assert findings[user].severity is Severity.CRITICAL
            path = f"Backup Operators ({user} -> {group} -> Backup Operators)"
            assert path in findings[user].objects[0].detail
        finally:
            samba_tool(lab, "group", "delete", group)
    finally:
        samba_tool(lab, "user", "delete", user)
    assert subjects(outcome(admin_dir, LEGACY_USER_SERVICE)) == {MIGRATION_SEED.user}
