"""`credo migrate` against the lab DC (issue 17 points 2 and 4): the seeded legacy user service
account svc_legacy (SPN HTTP/legacy.<domain>, a keytab) moved to a gMSA and back.

A GSSAPI service on the SPN accepts a client before the move (with the user's keytab), after
`migrate apply` (with the gMSA's keytab that `credo gmsa keytab` writes on the allowed host),
and again after `migrate rollback` (the user's keytab). A write refused between two steps
leaves the directory exactly as it was; `finish` refuses while the old account still logs on.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import ldap
import pytest

from credo.ad.connection import Directory
from credo.lab import Lab, LabSettings
from credo.lab.provision import MIGRATION_SEED
from tests.audit.conftest import object_sid
from tests.support.identity import CREDO, run

pytestmark = pytest.mark.lab

Env = Callable[..., dict[str, str]]
GMSA = "gmsa-legacy"


def samba_tool(lab: Lab, *args: str) -> str:
    argv = ["samba-tool", *args, "-H", str(lab.paths.sam_ldb), "-s", str(lab.paths.smb_conf)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{args}: {proc.stderr}"
    return proc.stdout


def _accepts(lab: Lab, as_identity: Env, spn: str, keytab: Path) -> str:
    """A client (WORKER2$) makes an AP-REQ for ``spn``; a service with ``keytab`` accepts it.
    Returns the initiator's name as the service saw it, or the service's error."""
    service, _, host = spn.partition("/")
    env = as_identity("worker2")
    token = run([CREDO[0], "-m", "tests.support.gss_token", "init", f"{service}@{host}"], env)
    assert token.returncode == 0, token.stderr
    accept = run([CREDO[0], "-m", "tests.support.gss_token", "accept", str(keytab)], env, input=token.stdout)
    return accept.stdout.strip() if accept.returncode == 0 else f"refused: {accept.stderr.strip()[-200:]}"


def _spns(directory: Directory, sam: str) -> list[str]:
    entry = directory.search_one(
        directory.base_dn, ldap.SCOPE_SUBTREE, f"(sAMAccountName={sam})", ["servicePrincipalName"]
    )
    return [] if entry is None else sorted(v.decode() for v in entry[1].get("servicePrincipalName", []))


def _exists(directory: Directory, sam: str) -> bool:
    return (
        directory.search_one(directory.base_dn, ldap.SCOPE_SUBTREE, f"(sAMAccountName={sam})", ["cn"])
        is not None
    )


def _members(directory: Directory, group_dn: str) -> list[str]:
    entry = directory.search_one(group_dn, ldap.SCOPE_BASE, "(objectClass=*)", ["member"])
    return sorted(v.decode().lower() for v in entry[1].get("member", [])) if entry else []


@pytest.fixture
def app_group(lab: Lab, lab_settings: LabSettings, admin_dir: Directory) -> Iterator[str]:
    """A group svc_legacy is in (copied to the gMSA) and Backup Operators (privileged: named, not
    copied); both memberships removed afterwards."""
    name = f"credo-legacy-app-{uuid.uuid4().hex[:6]}"
    samba_tool(lab, "group", "add", name)
    samba_tool(lab, "group", "addmembers", name, MIGRATION_SEED.user)
    samba_tool(lab, "group", "addmembers", "Backup Operators", MIGRATION_SEED.user)
    try:
        yield f"CN={name},CN=Users,{lab_settings.base_dn}"
    finally:
        samba_tool(lab, "group", "removemembers", "Backup Operators", MIGRATION_SEED.user)
        samba_tool(lab, "group", "delete", name)
        for stray in admin_dir.search(
            lab_settings.base_dn, ldap.SCOPE_SUBTREE, f"(sAMAccountName={GMSA}$)", ["cn"]
        ):
            admin_dir.delete(stray[0], tree=True)


def test_plan_apply_rollback_with_a_gssapi_service_on_the_spn(
    lab: Lab,
    lab_settings: LabSettings,
    as_identity: Env,
    admin_dir: Directory,
    app_group: str,
    tmp_path: Path,
) -> None:
    admin = as_identity("admin")
    spn = MIGRATION_SEED.spn(lab_settings.dns_domain)
    user_keytab = lab.paths.user_keytab(MIGRATION_SEED.user)
    assert _spns(admin_dir, MIGRATION_SEED.user) == [spn]
    # Before: the service runs with the user's password (its keytab).
    assert _accepts(lab, as_identity, spn, user_keytab).upper().startswith("WORKER2$@")

    plan = tmp_path / "legacy.plan"
    shown = run(
        [*CREDO, "migrate", "plan", MIGRATION_SEED.user, "--hosts", "worker1", "--out", str(plan)], admin
    )
    assert shown.returncode == 0, shown.stderr
    assert f"move SPN {spn} from {MIGRATION_SEED.user} to {GMSA}$" in shown.stdout
    assert "(not copied: Backup Operators, a privileged group)" in shown.stdout
    assert f'name = "{GMSA}"' in shown.stdout and f"--as {GMSA}" in shown.stdout
    data = json.loads(plan.read_text())
    assert [g["dn"].lower() for g in data["groups"]] == [app_group.lower()]
    assert oct(plan.stat().st_mode & 0o777) == "0o600"
    assert not _exists(admin_dir, f"{GMSA}$")  # plan changes nothing

    applied = run([*CREDO, "migrate", "apply", str(plan), "--json"], admin)
    assert applied.returncode == 0, applied.stderr
    assert json.loads(applied.stdout)["applied"] == ["create-gmsa", "add-member", "move-spn"]
    assert _spns(admin_dir, MIGRATION_SEED.user) == [] and _spns(admin_dir, f"{GMSA}$") == [spn]
    gmsa_dn = admin_dir.search_one(
        lab_settings.base_dn, ldap.SCOPE_SUBTREE, f"(sAMAccountName={GMSA}$)", ["cn"]
    )
    assert gmsa_dn is not None and gmsa_dn[0].lower() in _members(admin_dir, app_group)
    # The journal recorded each change before it was made.
    journal = [json.loads(line) for line in (tmp_path / "legacy.plan.journal").read_text().splitlines()]
    assert [(j["phase"], j["action"]) for j in journal][:2] == [
        ("begin", "create-gmsa"),
        ("done", "create-gmsa"),
    ]

    # After: the allowed host writes the gMSA's keytab with credo; the service accepts with it.
    gmsa_keytab = tmp_path / "gmsa.keytab"
    written = run(
        [*CREDO, "gmsa", "keytab", GMSA, "--spn", spn, "--out", str(gmsa_keytab)], as_identity("worker1")
    )
    assert written.returncode == 0, written.stderr
    assert _accepts(lab, as_identity, spn, gmsa_keytab).upper().startswith("WORKER2$@")
    assert _accepts(lab, as_identity, spn, user_keytab).startswith(
        "refused"
    )  # the old password no longer serves

    undone = run([*CREDO, "migrate", "rollback", str(plan)], admin)
    assert undone.returncode == 0, undone.stderr
    assert _spns(admin_dir, MIGRATION_SEED.user) == [spn] and not _exists(admin_dir, f"{GMSA}$")
    assert all(GMSA not in m for m in _members(admin_dir, app_group))
    assert _accepts(lab, as_identity, spn, user_keytab).upper().startswith("WORKER2$@")
    again = run([*CREDO, "migrate", "rollback", str(plan)], admin)
    assert again.returncode == 1 and "nothing to roll back" in again.stderr


def test_a_refused_write_between_steps_leaves_the_directory_as_it_was(
    lab: Lab,
    lab_settings: LabSettings,
    as_identity: Env,
    admin_dir: Directory,
    app_group: str,
    tmp_path: Path,
) -> None:
    """A second group whose member attribute the administrator is denied: apply creates the gMSA,
    adds it to the first group, is refused at the second, and undoes both."""
    admin = as_identity("admin")
    blocked = f"credo-legacy-blocked-{uuid.uuid4().hex[:6]}"
    samba_tool(lab, "group", "add", blocked)
    blocked_dn = f"CN={blocked},CN=Users,{lab_settings.base_dn}"
    try:
        samba_tool(lab, "group", "addmembers", blocked, MIGRATION_SEED.user)
        plan = tmp_path / "legacy.plan"
        made = run(
            [*CREDO, "migrate", "plan", MIGRATION_SEED.user, "--hosts", "worker1", "--out", str(plan)], admin
        )
        assert made.returncode == 0, made.stderr
        groups = [g["dn"].lower() for g in json.loads(plan.read_text())["groups"]]
        assert (
            groups.index(blocked_dn.lower()) > groups.index(app_group.lower())  # refused second
        )
        administrator = object_sid(admin_dir, f"CN=Administrator,CN=Users,{lab_settings.base_dn}")
        samba_tool(lab, "dsacl", "set", f"--objectdn={blocked_dn}",
                   f"--sddl=(OD;;WP;bf9679c0-0de6-11d0-a285-00aa003049e2;;{administrator})")  # fmt: skip
        before = (
            _spns(admin_dir, MIGRATION_SEED.user),
            _members(admin_dir, app_group),
            _members(admin_dir, blocked_dn),
        )
        proc = run([*CREDO, "migrate", "apply", str(plan)], admin)
        assert proc.returncode == 5, proc.stdout + proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert lines[0].startswith("credo: error: add-member failed, every step before it was undone"), lines
        assert "Traceback" not in proc.stderr
        after = (
            _spns(admin_dir, MIGRATION_SEED.user),
            _members(admin_dir, app_group),
            _members(admin_dir, blocked_dn),
        )
        assert after == before and not _exists(admin_dir, f"{GMSA}$")
        states = [
            json.loads(line)["phase"] for line in (tmp_path / "legacy.plan.journal").read_text().splitlines()
        ]
        assert states[-1] == "rolled-back"
    finally:
        samba_tool(lab, "group", "delete", blocked)


def test_finish_refuses_while_the_old_account_logs_on_then_disables_it(
    lab: Lab,
    lab_settings: LabSettings,
    as_identity: Env,
    admin_dir: Directory,
    tmp_path: Path,
) -> None:
    """A fresh user service account: never logged on. After apply, its password is used (kinit):
    lastLogonTimestamp is newer than the move, finish refuses. Rolled back and applied again
    (the logon now older than the move), finish disables it; rollback enables it again."""
    admin = as_identity("admin")
    user = f"svc_t{uuid.uuid4().hex[:6]}"
    spn = f"HTTP/{user.replace('_', '-')}.{lab_settings.dns_domain}"
    samba_tool(lab, "user", "add", user, "--random-password")
    keytab = tmp_path / "user.keytab"
    try:
        samba_tool(lab, "spn", "add", spn, user)
        samba_tool(lab, "domain", "exportkeytab", str(keytab), f"--principal={user}")
        plan = tmp_path / "t.plan"
        name = f"gmsa-{user[4:]}"
        made = run(
            [*CREDO, "migrate", "plan", user, "--hosts", "worker1", "--name", name, "--out", str(plan)], admin
        )
        assert made.returncode == 0, made.stderr
        assert run([*CREDO, "migrate", "apply", str(plan)], admin).returncode == 0
        kinit = run(["kinit", "-k", "-t", str(keytab), f"{user}@{lab_settings.realm}"],
                    as_identity(None) | {"KRB5CCNAME": "MEMORY:t"})  # fmt: skip
        assert kinit.returncode == 0, kinit.stderr
        refused = run([*CREDO, "migrate", "finish", str(plan)], admin)
        assert (
            refused.returncode == 1
            and "logged on at" in refused.stderr
            and "after the move" in refused.stderr
        )
        assert run([*CREDO, "migrate", "rollback", str(plan)], admin).returncode == 0
        assert run([*CREDO, "migrate", "apply", str(plan)], admin).returncode == 0
        done = run([*CREDO, "migrate", "finish", str(plan), "--json"], admin)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["disabled"] == user
        uac = admin_dir.search_one(
            lab_settings.base_dn, ldap.SCOPE_SUBTREE, f"(sAMAccountName={user})", ["userAccountControl"]
        )
        assert uac is not None and int(uac[1]["userAccountControl"][0]) & 0x2
        assert run([*CREDO, "migrate", "rollback", str(plan)], admin).returncode == 0
        uac = admin_dir.search_one(
            lab_settings.base_dn, ldap.SCOPE_SUBTREE, f"(sAMAccountName={user})", ["userAccountControl"]
        )
        assert uac is not None and not int(uac[1]["userAccountControl"][0]) & 0x2
        assert _spns(admin_dir, user) == [spn] and not _exists(admin_dir, f"{name}$")
    finally:
        samba_tool(lab, "user", "delete", user)
        for stray in admin_dir.search(
            lab_settings.base_dn, ldap.SCOPE_SUBTREE, f"(sAMAccountName=gmsa-{user[4:]}$)", ["cn"]
        ):
            admin_dir.delete(stray[0], tree=True)


def test_bad_plans_and_users_are_one_line_errors(as_identity: Env, tmp_path: Path) -> None:
    admin = as_identity("admin")
    nobody = run([*CREDO, "migrate", "plan", "no_such_user", "--hosts", "worker1"], admin)
    assert nobody.returncode == 6 and "no user account 'no_such_user'" in nobody.stderr
    garbage = tmp_path / "x.plan"
    garbage.write_text("{not json")
    bad = run([*CREDO, "migrate", "apply", str(garbage)], admin)
    assert bad.returncode == 2 and "is not JSON" in bad.stderr and "Traceback" not in bad.stderr
    missing = run([*CREDO, "migrate", "apply", str(tmp_path / "none.plan")], admin)
    assert missing.returncode == 2 and "cannot read" in missing.stderr
