"""`credo account` against the lab DC, checked through independent oracles: samba-tool on the DC's
own database, and `credo gmsa test` as an allowed host (WORKER1$) and one that is not (WORKER2$)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from credo.lab import Lab, LabSettings
from tests.accounts.conftest import samba_tool
from tests.support.identity import credo, ldapsearch

Env = Callable[..., dict[str, str]]
Names = Callable[[str], str]


def new_gmsa(name: str, settings: LabSettings, env: dict[str, str], *extra: str) -> dict[str, object]:
    proc = credo(
        "account", "new", name, "--dns-host-name", f"{name}.{settings.dns_domain}",
        "--allowed", "HybridWorkers", *extra, "--json", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def test_new_gmsa_reads_back_the_same_through_samba_tool(
    lab: Lab, lab_settings: LabSettings, admin_env: dict[str, str], account_names: Names
) -> None:
    name = account_names("web")
    spn = f"HTTP/{name}.{lab_settings.dns_domain}"
    created = new_gmsa(
        name, lab_settings, admin_env, "--allowed", "worker2$", "--spn", spn,
        "--interval-days", "7", "--description", "web front end",
    )  # fmt: skip
    view = json.loads(samba_tool(lab, "service-account", "view", f"--name={name}$").stdout)
    assert view["dn"] == created["dn"]
    assert view["objectSid"] == created["sid"]
    assert view["dNSHostName"] == f"{name}.{lab_settings.dns_domain}"
    assert view["msDS-ManagedPasswordInterval"] == 7
    assert view["msDS-SupportedEncryptionTypes"] == 24
    assert view["userAccountControl"] == 4096  # enabled: WORKSTATION_TRUST_ACCOUNT only
    assert "msDS-GroupManagedServiceAccount" in view["objectClass"]
    # The membership descriptor, as Samba parses it, is the SDDL credo shows.
    assert view["msDS-GroupMSAMembership"] == created["group_msa_membership_sddl"]
    assert str(created["group_msa_membership_sddl"]).startswith("O:BAD:(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;")
    shown = json.loads(
        samba_tool(lab, "service-account", "group-msa-membership", "show", f"--name={name}$", "--json").stdout
    )
    base = lab_settings.base_dn
    assert shown["trustees"] == [f"CN=HybridWorkers,CN=Users,{base}", f"CN=WORKER2,CN=Computers,{base}"]
    names = [p["name"] for p in created["principals_allowed_to_retrieve_password"]]  # type: ignore[attr-defined]
    assert names == [f"{lab_settings.netbios}\\HybridWorkers", f"{lab_settings.netbios}\\WORKER2$"]
    assert created["service_principal_names"] == [spn]
    assert created["description"] == "web front end"


def test_new_gmsa_works_at_once_from_an_allowed_host_and_no_other(
    lab_settings: LabSettings, admin_env: dict[str, str], as_identity: Env, account_names: Names
) -> None:
    name = account_names("now")
    new_gmsa(name, lab_settings, admin_env)
    allowed = credo("gmsa", "test", name, env=as_identity("worker1"))
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.strip() == "True"
    other = credo("gmsa", "test", name, "--json", env=as_identity("worker2"))
    assert other.returncode == 1
    assert json.loads(other.stdout)["error"] == "NotPermittedToRetrieve"


def test_disabled_gmsa_then_enabled(
    lab_settings: LabSettings, admin_env: dict[str, str], as_identity: Env, account_names: Names
) -> None:
    name = account_names("dis")
    created = new_gmsa(name, lab_settings, admin_env, "--disabled")
    assert created["enabled"] is False
    proc = credo("gmsa", "test", name, "--json", env=as_identity("worker1"))
    assert json.loads(proc.stdout)["error"] == "AccountDisabled"
    enabled = credo("account", "set", name, "--enable", "--json", env=admin_env)
    assert json.loads(enabled.stdout)["enabled"] is True
    assert credo("gmsa", "test", name, env=as_identity("worker1")).returncode == 0


def test_set_changes_membership_spns_enctypes_and_more(
    lab: Lab, lab_settings: LabSettings, admin_env: dict[str, str], as_identity: Env, account_names: Names
) -> None:
    name = account_names("set")
    new_gmsa(name, lab_settings, admin_env)
    domain = lab_settings.dns_domain
    proc = credo(
        "account", "set", name, "--add-allowed", "worker2", "--add-spn", f"HTTP/a.{domain}",
        "--add-spn", f"HTTP/b.{domain}", "--enctypes", "AES256", "--description", "changed",
        "--dns-host-name", f"other.{domain}", "--json", env=admin_env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [p["name"] for p in data["principals_allowed_to_retrieve_password"]] == [
        f"{lab_settings.netbios}\\HybridWorkers",
        f"{lab_settings.netbios}\\WORKER2$",
    ]
    assert data["service_principal_names"] == [f"HTTP/a.{domain}", f"HTTP/b.{domain}"]
    assert data["supported_encryption_types"] == ["AES256"]
    assert data["description"] == "changed" and data["dns_host_name"] == f"other.{domain}"
    assert credo("gmsa", "test", name, env=as_identity("worker2")).returncode == 0
    # Replace and remove.
    proc = credo(
        "account", "set", name, "--allowed", "worker2$", "--remove-spn", f"HTTP/a.{domain}", "--json",
        env=admin_env,
    )  # fmt: skip
    data = json.loads(proc.stdout)
    assert [p["name"] for p in data["principals_allowed_to_retrieve_password"]] == [
        f"{lab_settings.netbios}\\WORKER2$"
    ]
    assert data["service_principal_names"] == [f"HTTP/b.{domain}"]
    shown = json.loads(
        samba_tool(lab, "service-account", "group-msa-membership", "show", f"--name={name}$", "--json").stdout
    )
    assert shown["trustees"] == [f"CN=WORKER2,CN=Computers,{lab_settings.base_dn}"]
    assert credo("gmsa", "test", name, env=as_identity("worker1")).returncode == 1
    proc = credo(
        "account",
        "set",
        name,
        "--remove-allowed",
        "worker2",
        "--add-allowed",
        "HybridWorkers",
        "--json",
        env=admin_env,
    )
    assert proc.returncode == 0, proc.stderr


def test_get_list_and_remove(
    lab: Lab, lab_settings: LabSettings, admin_env: dict[str, str], account_names: Names
) -> None:
    name = account_names("lst")
    new_gmsa(name, lab_settings, admin_env)
    listing = json.loads(credo("account", "list", "--json", env=admin_env, check=True).stdout)
    assert {f"{name}$", "svcauto$"} <= {row["sam_account_name"] for row in listing}
    narrowed = credo(
        "account", "list", "--filter", f"(dNSHostName={name}.*)", "--json", env=admin_env, check=True
    )
    assert [row["sam_account_name"] for row in json.loads(narrowed.stdout)] == [f"{name}$"]
    got = json.loads(credo("account", "get", f"{name}$", "--json", env=admin_env, check=True).stdout)
    assert got["type"] == "gMSA" and got["password_interval_days"] == 30
    text = credo("account", "get", name, env=admin_env, check=True).stdout
    assert "principals allowed to retrieve password" in text and "HybridWorkers" in text
    removed = credo("account", "remove", name, "--yes", "--json", env=admin_env, check=True)
    assert json.loads(removed.stdout)["removed"] == f"{name}$"
    assert samba_tool(lab, "service-account", "view", f"--name={name}$", check=False).returncode != 0
    missing = credo("account", "get", name, env=admin_env)
    assert missing.returncode == 6 and "does not exist" in missing.stderr


def test_remove_without_yes_is_refused_when_not_interactive(
    lab_settings: LabSettings, admin_env: dict[str, str], account_names: Names
) -> None:
    name = account_names("keep")
    new_gmsa(name, lab_settings, admin_env)
    proc = credo("account", "remove", name, env=admin_env, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and "--yes" in proc.stderr
    assert credo("account", "get", name, env=admin_env).returncode == 0


def test_standalone_account_link_unlink_and_install(
    lab: Lab, admin_env: dict[str, str], as_identity: Env, account_names: Names, tmp_path: Path
) -> None:
    name = account_names("sa")
    proc = credo("account", "new", name, "--standalone", "--computer", "worker2", "--json", env=admin_env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["type"] == "sMSA" and data["linked_computers"] == [
        f"CN=WORKER2,CN=Computers,{lab.settings.base_dn}"
    ]  # type: ignore[union-attr]
    # Oracle: the link is msDS-HostServiceAccount on the computer object, read with OpenLDAP's client.
    computer = ldapsearch(admin_env, "(sAMAccountName=WORKER2$)", "msDS-HostServiceAccount")
    assert computer[0][1]["msDS-HostServiceAccount"] == [str(data["dn"]).encode()]
    unlinked = credo("account", "unlink", name, "--computer", "WORKER2$", "--json", env=admin_env)
    assert unlinked.returncode == 0, unlinked.stderr
    assert json.loads(unlinked.stdout)["linked_computers"] == []
    again = credo("account", "unlink", name, "--computer", "worker2", env=admin_env)
    assert again.returncode == 2 and "not linked" in again.stderr
    linked = credo("account", "link", name, "--computer", "worker2", "--json", env=admin_env)
    assert json.loads(linked.stdout)["computer"] == "WORKER2$"
    # Install on WORKER1: restricted to WORKER2, so refused; unlinked, WORKER1 binds it to itself.
    accounts = tmp_path / "accounts.json"
    worker1 = as_identity("worker1", CREDO_ACCOUNTS_FILE=str(accounts))
    refused = credo("account", "install", name, env=worker1)
    assert refused.returncode == 5 and "another computer" in refused.stderr
    assert not accounts.exists()
    credo("account", "unlink", name, "--computer", "worker2", env=admin_env, check=True)
    installed = credo("account", "install", name, "--json", env=worker1)
    assert installed.returncode == 0, installed.stderr
    assert json.loads(installed.stdout)["type"] == "sMSA"
    got = json.loads(credo("account", "get", name, "--json", env=admin_env, check=True).stdout)
    assert got["linked_computers"] == [f"CN=WORKER1,CN=Computers,{lab.settings.base_dn}"]  # type: ignore[union-attr]
    assert json.loads(accounts.read_text())["accounts"][0]["sam_account_name"] == f"{name}$"


def test_install_and_uninstall_a_gmsa(
    lab_settings: LabSettings,
    admin_env: dict[str, str],
    as_identity: Env,
    account_names: Names,
    tmp_path: Path,
) -> None:
    name = account_names("ins")
    new_gmsa(name, lab_settings, admin_env)
    accounts = tmp_path / "etc" / "accounts.json"
    worker2 = as_identity("worker2", CREDO_ACCOUNTS_FILE=str(accounts))
    refused = credo("account", "install", name, env=worker2)
    assert refused.returncode == 5 and "not permitted" in refused.stderr
    assert not accounts.exists()  # nothing recorded after a failed check
    worker1 = as_identity("worker1", CREDO_ACCOUNTS_FILE=str(accounts))
    proc = credo("account", "install", name, "--json", env=worker1)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["sam_account_name"] == f"{name}$" and record["host"] == f"WORKER1$@{lab_settings.realm}"
    stored = json.loads(accounts.read_text())["accounts"]
    assert [a["sam_account_name"] for a in stored] == [f"{name}$"]
    assert oct(accounts.stat().st_mode & 0o777) == "0o644"
    assert "password" not in accounts.read_text().lower()
    removed = credo("account", "uninstall", name, "--json", env=worker1)
    assert removed.returncode == 0 and json.loads(accounts.read_text())["accounts"] == []
    again = credo("account", "uninstall", name, env=worker1)
    assert again.returncode == 6 and "not installed" in again.stderr


def test_new_in_another_container(
    lab_settings: LabSettings, admin_env: dict[str, str], account_names: Names
) -> None:
    name = account_names("ou")
    ou = f"OU=Staff,{lab_settings.base_dn}"
    created = new_gmsa(name, lab_settings, admin_env, "--path", ou)
    assert created["dn"] == f"CN={name},{ou}"
